"""One gateway request end to end: credential → upstream → held → bytes to the client.

The attempt loop is the engine's: a :class:`~sidecar.rotation.failover.Failover` hands out
credentials (renewing OAuth logins) and decides after each failed attempt whether to
rotate, refresh, skip or give up, recording every outcome in the shared pool. What is
the gateway's own is the holding: a streamed answer is kept back until its first
content event or an error event, so that a 429 status, or an ``overloaded_error``
right after ``message_start``, is replayed on the next key without the client ever
seeing it. Once bytes went out they are the client's; a later error event passes
through as the provider sent it, and the key is still cooled.

A provider's daily budget (:mod:`sidecar.rotation.budget`) is checked before a request
goes out and its answer's cost counted after. The gateway never falls back to another
provider (docs/gateway.md): the body is the client's, in its flavour, for its model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Mapping

import attrs
import httpx
from aiohttp import web

from sidecar import pricing
from sidecar.credentials import Credential
from sidecar.errors import (
    AllRateLimited,
    BudgetExceeded,
    CredentialRejected,
    InvalidParams,
    LoginError,
    NoCredentials,
    SidecarError,
)
from sidecar.fingerprints import fingerprint, redact
from sidecar.gateway._events import StreamWatch
from sidecar.gateway._pump import Pump
from sidecar.gateway._responses import responses_usage
from sidecar.gateway._routes import Route, credential_headers
from sidecar.gateway._scrub import Scrubber
from sidecar.gateway._shapes import error_body
from sidecar.limits import BodyLimits
from sidecar.providers import ProviderConfigError, UpstreamFailure, Usage
from sidecar.providers._errors import response_too_large, transport_failure
from sidecar.providers._openai import usage_from_openai
from sidecar.providers._sse import USER_AGENT
from sidecar.rotation.classify import FailureClass, parse_failure
from sidecar.rotation.failover import Failover, Refresher
from sidecar.rotation.keypool import KeyPool
from sidecar.rotation.routing import Routing
from sidecar.timeouts import Timeouts

__all__ = ["Proxy", "RequestLog"]

log = logging.getLogger("sidecar.gateway")

# Headers that describe one hop, the client's credentials, or what only we negotiate.
_DROP_REQUEST = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "authorization",
        "x-api-key",
        "api-key",
        # The client's own key's organization and project: a pool key of another one
        # gets 401 mismatched_organization, which would evict it.
        "openai-organization",
        "openai-project",
        "cookie",
        "accept-encoding",
        "user-agent",
        "anthropic-beta",
        "origin",
        "referer",
    }
)
_DROP_RESPONSE = frozenset(
    {
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-encoding",
        "set-cookie",
        "server",
        "date",
    }
)
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


class _Held(Exception):
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


def _lost(exc: httpx.TransportError, cred: Credential) -> _Held:
    """A connection that failed before anything went out: replayed like the engine does."""
    return _Held(transport_failure(exc, cred.secret, mid_stream=False))


def _response_headers(resp: httpx.Response) -> list[tuple[str, str]]:
    # No CORS header ever leaves the gateway: a web page must not read the answers.
    return [
        (k, v)
        for k, v in resp.headers.multi_items()
        if k.lower() not in _DROP_RESPONSE and not k.lower().startswith("access-control-")
    ]


def _model_of(body: bytes) -> str | None:
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        return None
    model = doc.get("model") if isinstance(doc, dict) else None
    return model if isinstance(model, str) else None


def _usage_of(api: str, body: bytes) -> Usage | None:
    """The usage of a whole (non-streamed) JSON answer."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    usage = doc.get("usage") if isinstance(doc, dict) else None
    if not isinstance(usage, dict):
        return None
    if api == "responses":
        return responses_usage(usage)
    if api != "anthropic":
        return usage_from_openai(usage)

    def num(name: str) -> int:
        value = usage.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    return Usage(
        input_tokens=num("input_tokens"),
        output_tokens=num("output_tokens"),
        cache_read_tokens=num("cache_read_input_tokens"),
        cache_write_tokens=num("cache_creation_input_tokens"),
    )


class Proxy:
    def __init__(
        self,
        keypool: KeyPool,
        client: httpx.AsyncClient,
        *,
        timeouts: Timeouts,
        limits: BodyLimits,
        refresher: Refresher,
        ensure_fresh: Refresher,
        max_cooldown_wait: float,
    ) -> None:
        self.keypool = keypool
        self.client = client
        self.timeouts = timeouts
        self.limits = limits
        self.refresher = refresher
        self.ensure_fresh = ensure_fresh
        self.max_cooldown_wait = max_cooldown_wait
        self.routing = Routing(keypool.store, keypool.clock)

    def error(
        self,
        route_shape: str,
        status: int,
        error_type: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        return web.Response(
            status=status,
            body=error_body(route_shape, error_type, message),
            content_type="application/json",
            headers=headers,
        )

    async def handle(self, request: web.Request, route: Route, body: bytes) -> web.StreamResponse:
        entry = RequestLog(route.provider, _model_of(body))
        try:
            response = await self._handle(request, route, body, entry)
            entry.status = response.status
            return response
        except asyncio.CancelledError:
            if not entry.finished:
                entry.status = 499  # the client hung up early (nginx's number for it)
            raise
        finally:
            log.info("%s", entry.line())
            self._count_spend(entry)

    def _count_spend(self, entry: RequestLog) -> None:
        """Count an answer's cost against its provider's daily budget, if it has one."""
        if entry.usage is None or entry.model is None or entry.status >= 400:
            return
        if entry.provider not in self.routing.budgets():
            return
        cost = pricing.cost(entry.model, entry.usage, self.keypool.store.home)
        # Not awaited: a handler being cancelled must not wait on the store's lock.
        asyncio.get_running_loop().run_in_executor(
            None, self.routing.record_spend, entry.provider, cost.total
        )

    async def _handle(
        self, request: web.Request, route: Route, body: bytes, entry: RequestLog
    ) -> web.StreamResponse:
        try:
            self.routing.check_budget(route.provider)
        except BudgetExceeded as exc:
            # 402, never 429: a client would retry a rate limit until midnight.
            return self.error(route.shape, 402, "billing_error", f"llm-sidecar gateway: {exc}")
        env = self.keypool.env
        try:
            url = route.upstream_url(env, entry.model, request.query_string)
        except ProviderConfigError as exc:
            return self.error(route.shape, 500, "api_error", f"llm-sidecar gateway: {exc}")
        failover = Failover(
            self.keypool,
            route.provider,
            profile=None,
            refresher=self.refresher,
            ensure_fresh=self.ensure_fresh,
            max_cooldown_wait=self.max_cooldown_wait,
            on_status=lambda provider: None,  # editors see the store change (statusfeed)
        )
        last: _Held | None = None
        while True:
            try:
                cred = await failover.next_credential()
            except SidecarError as err:
                return self._give_up(route, err, last)
            entry.attempts = failover.attempts
            entry.key = fingerprint(cred.secret)
            try:
                return await self._attempt(request, route, url, body, cred, entry)
            except _Held as held:
                last = held
                if not route.replay:
                    # Sent once: the outcome still counts for the key, the answer is the client's.
                    self.keypool.report_failure(cred, held.failure.failure)
                    return self._give_up(route, None, held)
                try:
                    await failover.after_failure(cred, held.failure)
                except SidecarError as err:
                    return self._give_up(route, err, held)

    def _earliest_retry(self, provider: str) -> float | None:
        """When every credential still in rotation is cooling down: the earliest end.

        The request's own error names its last attempt (a 401, say); but if the keys
        left are only cooling down, the client should hear "429, retry after N s".
        """
        usable = ("ok", "expiring", "coolingDown")  # not rejected, refused or expired
        states = [c for c in self.keypool.status(provider).credentials if c.state in usable]
        if states and all(c.state == "coolingDown" and c.cooldown_until for c in states):
            return min(c.cooldown_until or 0.0 for c in states)
        return None

    def _give_up(self, route: Route, err: SidecarError | None, last: _Held | None) -> web.Response:
        """The answer when no credential is left to try."""
        retry_at = err.retry_at if isinstance(err, AllRateLimited) else None
        if retry_at is None and err is not None:
            retry_at = self._earliest_retry(route.provider)
        if err is not None and retry_at is not None:
            # Seconds to the earliest usable key, so that clients back off for as long.
            wait = max(1, math.ceil(retry_at - time.time()))
            return self.error(
                route.shape,
                429,
                "rate_limit_error",
                f"llm-sidecar gateway: {err.message}",
                {"retry-after": str(wait)},
            )
        if last is not None and last.status is not None:
            # The provider's own answer, unchanged but for a key it may have echoed.
            return web.Response(status=last.status, body=last.body, headers=last.headers)
        if err is None:
            return self.error(route.shape, 502, "api_error", "llm-sidecar gateway: no answer")
        message = f"llm-sidecar gateway: {err.message}"
        if isinstance(err, NoCredentials | CredentialRejected | LoginError):
            return self.error(route.shape, 401, "authentication_error", message)
        if isinstance(err, InvalidParams):
            return self.error(route.shape, 400, "invalid_request_error", message)
        return self.error(route.shape, 502, "api_error", message)

    async def _attempt(
        self,
        request: web.Request,
        route: Route,
        url: str,
        body: bytes,
        cred: Credential,
        entry: RequestLog,
    ) -> web.StreamResponse:
        # Lower-cased: a client's "Anthropic-Version" and ours must not both go out.
        headers = {
            k.lower(): v for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST
        }
        # Every anthropic-beta line: repeated header lines are one comma-separated list.
        betas = ",".join(request.headers.getall("anthropic-beta", ()))
        ours = credential_headers(route, self.keypool.env, cred, betas)
        if "anthropic-version" in headers:
            del ours["anthropic-version"]  # the body was written for the client's version
        headers.update(ours)
        # Our own product token after the client's: honest about both, borrowing neither.
        client_agent = request.headers.get("user-agent", "").strip()
        headers["user-agent"] = f"{client_agent} {USER_AGENT}" if client_agent else USER_AGENT
        # Identity: the bytes the client gets are the provider's, not re-encoded by us.
        headers["accept-encoding"] = "identity"
        upstream = self.client.build_request(request.method, url, headers=headers, content=body)
        try:
            resp = await self.client.send(upstream, stream=True)
        except httpx.TransportError as exc:
            raise _Held(
                transport_failure(exc, cred.secret, mid_stream=False), None, [], b""
            ) from None
        try:
            if not resp.is_success:
                raise await self._failed(resp, cred)
            if "text/event-stream" in resp.headers.get("content-type", ""):
                return await self._stream(request, route, resp, cred, entry)
            return await self._whole(route, resp, cred, entry)
        finally:
            # Also when the client went away, which cancels this handler: shielded, so
            # that the cancellation cannot interrupt the close and leave the upstream open.
            await asyncio.shield(resp.aclose())

    async def _failed(self, resp: httpx.Response, cred: Credential) -> _Held:
        raw = bytearray()
        with contextlib.suppress(httpx.TransportError):
            async for chunk in resp.aiter_raw():
                raw += chunk
                if len(raw) >= ERROR_BODY_LIMIT:
                    break
        failure = parse_failure(
            resp.status_code, resp.headers, bytes(raw), now=time.time(), secrets=[cred.secret]
        )
        text = bytes(raw).decode("utf-8", "replace")
        clean = redact(text, [cred.secret])
        body = bytes(raw) if clean == text else clean.encode()
        return _Held(
            UpstreamFailure(failure, mid_stream=False),
            resp.status_code,
            _response_headers(resp),
            body,
        )

    async def _whole(
        self, route: Route, resp: httpx.Response, cred: Credential, entry: RequestLog
    ) -> web.Response:
        try:
            raw = bytearray()
            async for chunk in resp.aiter_raw():
                raw += chunk
                if len(raw) > self.limits.max_response:
                    # Never a cut answer that looks whole: the client gets an error.
                    limit = self.limits.max_response
                    failure = response_too_large(
                        f"the answer is larger than {limit} bytes (LLM_SIDECAR_MAX_RESPONSE_BYTES)",
                        mid_stream=False,
                        status=resp.status_code,
                    )
                    raise _Held(failure)
        except httpx.TransportError as exc:
            raise _Held(
                transport_failure(exc, cred.secret, mid_stream=False), None, [], b""
            ) from None
        entry.first_byte = time.monotonic()
        entry.usage = _usage_of(route.stream_format, bytes(raw))
        self.keypool.report_success(cred)
        return web.Response(
            status=resp.status_code,
            body=Scrubber(cred.secret).clean(bytes(raw)),
            headers=_response_headers(resp),
        )

    def _cool_after_bytes(self, cred: Credential, failure: UpstreamFailure) -> None:
        """Too late to replay, but the key is cooled (or evicted) all the same."""
        if failure.failure.failure_class is not FailureClass.REQUEST:
            self.keypool.report_failure(cred, failure.failure)

    async def _stream(
        self,
        request: web.Request,
        route: Route,
        resp: httpx.Response,
        cred: Credential,
        entry: RequestLog,
    ) -> web.StreamResponse:
        watch = StreamWatch(route.stream_format, cred.secret, self.limits.max_event)
        held: list[bytes] = []
        chunks = resp.aiter_raw()
        # Hold until the answer shows itself (bounded by the read timeout): until then a
        # failure is replayed on the next key and the client never knows.
        if route.replay:
            hold_until = time.monotonic() + self.timeouts.read
            try:
                async for chunk in chunks:
                    held.append(chunk)
                    watch.feed(chunk)
                    if watch.failure is not None:
                        raise _Held(watch.failure)
                    if watch.decided or time.monotonic() > hold_until:
                        break
                else:
                    watch.eof()
                    if watch.failure is not None:
                        raise _Held(watch.failure)
            except httpx.TransportError as exc:
                raise _Held(
                    transport_failure(exc, cred.secret, mid_stream=False), None, [], b""
                ) from None
        out = web.StreamResponse(status=resp.status_code, headers=_response_headers(resp))
        await out.prepare(request)
        entry.first_byte = time.monotonic()
        ended = False
        scrub = Scrubber(cred.secret, self.limits.max_event)
        try:
            async with Pump(out) as pump:
                for chunk in held:
                    await pump.put(scrub.feed(chunk))
                async for chunk in chunks:
                    seen = watch.failure
                    watch.feed(chunk)
                    if seen is None and watch.failure is not None:
                        # Reported now, not at the end: a client that reads the error event
                        # hangs up, which cancels this handler before the stream ends.
                        self._cool_after_bytes(cred, watch.failure)
                    await pump.put(scrub.feed(chunk))
                await pump.put(scrub.flush())
            ended = True
        except httpx.TransportError:
            log.info("%s: the upstream broke off mid-stream", route.provider)
        except ConnectionResetError:
            log.info("%s: the client went away mid-stream", route.provider)
            return out
        if ended:
            watch.eof()
        entry.usage = watch.usage
        if watch.failure is None and watch.done:
            self.keypool.report_success(cred)
        if ended:
            # A client that hangs up right after the last byte cancels this handler
            # from here on: the answer was complete all the same.
            entry.status, entry.finished = out.status, True
            await out.write_eof()
        elif request.transport is not None:
            request.transport.close()  # an incomplete body, not a clean end: the client knows
        return out
