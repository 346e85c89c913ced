"""The provider's answer on its way back to the client: held, read whole, or streamed.

:mod:`~sidecar.gateway._proxy` decides which credential an attempt goes out on; this
module turns one attempt's upstream response into the client's. A failure before
anything went out is raised as :class:`Held` (for the proxy to replay on the next key).
A streamed answer is held back until its first content event or an error event, then
its bytes go out as they come: scrubbed of the key, never re-encoded, never parsed
beyond the few events that carry usage or an error (:mod:`~sidecar.gateway._events`).
"""

from __future__ import annotations

import json
import logging
import time

import aiohttp
import attrs
from aiohttp import web

from sidecar.credentials import Credential
from sidecar.fingerprints import redact
from sidecar.gateway._events import StreamWatch
from sidecar.gateway._pump import Pump
from sidecar.gateway._responses import responses_usage
from sidecar.gateway._routes import Route
from sidecar.gateway._scrub import Scrubber
from sidecar.gateway._upstream import UPSTREAM_ERRORS, lost, response_headers
from sidecar.limits import BodyLimits
from sidecar.providers import UpstreamFailure, Usage
from sidecar.providers._anthropic import usage_of as anthropic_usage
from sidecar.providers._errors import response_too_large
from sidecar.providers._openai import usage_from_openai
from sidecar.rotation.classify import FailureClass, parse_failure
from sidecar.rotation.headroom import read_windows
from sidecar.rotation.keypool import KeyPool

__all__ = ["ERROR_BODY_LIMIT", "Held", "Relay", "RequestLog"]

log = logging.getLogger("sidecar.gateway")

# An error body is read whole to be passed on; a proxy's megabytes of HTML are cut here.
ERROR_BODY_LIMIT = 1024 * 1024


@attrs.define
class RequestLog:
    """What the one log line of a request says."""

    provider: str
    model: str | None = None
    status: int = 0
    key: str = "-"  # the answering credential's fingerprint
    attempts: int = 0
    first_byte: float | None = None
    usage: Usage | None = None
    finished: bool = False  # every byte of the answer was handed to the client
    started: float = attrs.field(factory=time.monotonic)

    def line(self) -> str:
        now = time.monotonic()
        ttfb = f"{(self.first_byte - self.started) * 1000:.0f}ms" if self.first_byte else "-"
        u = self.usage
        tokens = (
            f"in={u.input_tokens} out={u.output_tokens} "
            f"cache_read={u.cache_read_tokens} cache_write={u.cache_write_tokens}"
            if u is not None
            else "tokens=-"
        )
        return (
            f"{self.provider} {self.model or '-'} {self.status} key={self.key} "
            f"attempts={self.attempts} ttfb={ttfb} total={(now - self.started) * 1000:.0f}ms "
            f"{tokens}"
        )


class Held(Exception):
    """An attempt's failure before anything went out, with the answer to pass on if
    rotation gives up (the provider's own status, headers and body)."""

    def __init__(
        self,
        failure: UpstreamFailure,
        status: int | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(failure.failure.message)
        self.failure = failure
        self.status = status
        self.headers = headers or []
        self.body = body


def _usage_of(api: str, body: bytes) -> Usage | None:
    """The usage of a whole (non-streamed) JSON answer; ``api``: Route.stream_format."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    usage = doc.get("usage") if isinstance(doc, dict) else None
    if not isinstance(usage, dict):
        return None
    if api == "responses":
        return responses_usage(usage)
    return anthropic_usage(usage) if api == "anthropic" else usage_from_openai(usage)


class _Answer(web.StreamResponse):
    # The status line and headers go out with the first bytes of the body: one send,
    # and one wake-up of the client, fewer before its first byte.
    _send_headers_immediately = False


@attrs.frozen
class Relay:
    keypool: KeyPool
    hold_for: float  # seconds a streamed answer may be held back (the read timeout)
    limits: BodyLimits

    async def failed(self, resp: aiohttp.ClientResponse, cred: Credential) -> Held:
        """A non-2xx answer, read (up to a bound) to be classified and passed on."""
        raw = bytearray()
        try:
            while len(raw) < ERROR_BODY_LIMIT and (chunk := await resp.content.readany()):
                raw += chunk
        except UPSTREAM_ERRORS:
            pass  # what came is what there is
        failure = parse_failure(
            resp.status, resp.headers, bytes(raw), now=time.time(), secrets=[cred.secret]
        )
        text = bytes(raw).decode("utf-8", "replace")
        clean = redact(text, [cred.secret])
        body = bytes(raw) if clean == text else clean.encode()
        return Held(
            UpstreamFailure(failure, mid_stream=False),
            resp.status,
            response_headers(resp.headers),
            body,
        )

    async def whole(
        self, route: Route, resp: aiohttp.ClientResponse, cred: Credential, entry: RequestLog
    ) -> web.Response:
        raw = bytearray()
        try:
            while chunk := await resp.content.readany():
                raw += chunk
                if len(raw) > self.limits.max_response:
                    # Never a cut answer that looks whole: the client gets an error.
                    limit = self.limits.max_response
                    failure = response_too_large(
                        f"the answer is larger than {limit} bytes (LLM_SIDECAR_MAX_RESPONSE_BYTES)",
                        mid_stream=False,
                        status=resp.status,
                    )
                    raise Held(failure)
        except UPSTREAM_ERRORS as exc:
            raise Held(lost(exc, cred)) from None
        entry.first_byte = time.monotonic()
        body = bytes(raw)
        entry.usage = _usage_of(route.stream_format, body)
        self._succeeded(cred, entry, resp)
        return web.Response(
            status=resp.status,
            body=Scrubber(cred.secret).clean(body),
            headers=response_headers(resp.headers),
        )

    def _succeeded(self, cred: Credential, entry: RequestLog, resp: aiohttp.ClientResponse) -> None:
        """The pool hears of the success, and of the windows the answer reported."""
        windows = read_windows(resp.headers, time.time())
        self.keypool.report_success(cred, model=entry.model, windows=windows)

    def _cool_after_bytes(
        self, cred: Credential, failure: UpstreamFailure, model: str | None = None
    ) -> None:
        """Too late to replay, but the key is cooled (or evicted) all the same."""
        if failure.failure.failure_class is not FailureClass.REQUEST:
            self.keypool.report_failure(cred, failure.failure, model)

    async def _hold(
        self,
        resp: aiohttp.ClientResponse,
        cred: Credential,
        watch: StreamWatch,
        model: str | None = None,
    ) -> list[bytes]:
        """Read until the answer shows itself (bounded by the read timeout): until then a
        failure is replayed on the next key and the client never knows.

        An error event after the first content event is the client's, even when both
        came in one read: what is replayed must not depend on how the bytes were cut.
        """
        held: list[bytes] = []
        hold_until = time.monotonic() + self.hold_for
        try:
            while chunk := await resp.content.readany():
                held.append(chunk)
                watch.feed(chunk)
                if early := watch.early_failure:
                    raise Held(early)
                if watch.decided or time.monotonic() > hold_until:
                    break
            else:
                watch.eof()
                if early := watch.early_failure:
                    raise Held(early)
        except UPSTREAM_ERRORS as exc:
            raise Held(lost(exc, cred)) from None
        if watch.failure is not None:
            self._cool_after_bytes(cred, watch.failure, model)  # held with the content before it
        return held

    async def stream(
        self,
        request: web.Request,
        route: Route,
        resp: aiohttp.ClientResponse,
        cred: Credential,
        entry: RequestLog,
    ) -> web.StreamResponse:
        watch = StreamWatch(route.stream_format, cred.secret, self.limits.max_event)
        held = await self._hold(resp, cred, watch, entry.model) if route.replay else []
        out = _Answer(status=resp.status, headers=response_headers(resp.headers))
        await out.prepare(request)
        entry.first_byte = time.monotonic()
        ended = False
        scrub = Scrubber(cred.secret, self.limits.max_event)
        try:
            # The held bytes in one write, at once: not a turn of the loop later through
            # the pump's writer task (they are the time to first byte).
            if first := b"".join([scrub.feed(chunk) for chunk in held]):
                await out.write(first)
            async with Pump(out) as pump:
                while True:
                    try:
                        chunk = await resp.content.readany()
                    except UPSTREAM_ERRORS:
                        log.info("%s: the upstream broke off mid-stream", route.provider)
                        break
                    if not chunk:
                        ended = True
                        await pump.put(scrub.flush())
                        break
                    seen = watch.failure
                    watch.feed(chunk)
                    if seen is None and watch.failure is not None:
                        # Reported now, not at the end: a client that reads the error event
                        # hangs up, which cancels this handler before the stream ends.
                        self._cool_after_bytes(cred, watch.failure, entry.model)
                    await pump.put(scrub.feed(chunk))
        except ConnectionResetError:
            log.info("%s: the client went away mid-stream", route.provider)
            return out
        if ended:
            watch.eof()
        entry.usage = watch.usage
        if watch.failure is None and watch.done:
            self._succeeded(cred, entry, resp)
        if ended:
            # A client that hangs up right after the last byte cancels this handler
            # from here on: the answer was complete all the same.
            entry.status, entry.finished = out.status, True
            await out.write_eof()
        elif request.transport is not None:
            request.transport.close()  # an incomplete body, not a clean end: the client knows
        return out
