"""The HTTP half both wire flavours share: POST, check the answer, read SSE, map failures.

A flavour supplies a :class:`Parser` (pure: SSE events in, deltas out, no I/O), and
:func:`stream_deltas` does the rest, so status handling, bounded error bodies, transport
errors, early ends and secret redaction are written once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from httpx_sse import EventSource

from sidecar import __version__
from sidecar.fingerprints import redact
from sidecar.providers._bounded import BodyError, BodyTooLarge
from sidecar.providers._errors import (
    UpstreamFailure,
    local_failure,
    malformed_stream,
    redacted,
    response_too_large,
    transport_failure,
    unsendable_credential,
)
from sidecar.providers._types import Delta, MessageEnd
from sidecar.rotation.classify import parse_failure
from sidecar.rotation.headroom import Window, read_windows

log = logging.getLogger(__name__)

__all__ = ["ERROR_BODY_LIMIT", "USER_AGENT", "Parser", "read_bounded", "stream_deltas"]

# Our own identity, never another client's: the sidecar never disguises its requests as
# another vendor's app (docs/architecture.md, "Honest client identity").
USER_AGENT = f"llm-sidecar/{__version__}"

# An error body is read for its message only; a proxy streaming megabytes of HTML at
# us must not be buffered whole.
ERROR_BODY_LIMIT = 64 * 1024

# How long the end of a body may take after the message ended (see _drain).
DRAIN_SECONDS = 0.25


class Parser(Protocol):
    """One response's SSE events to deltas. ``done`` turns True once the message ended."""

    @property
    def done(self) -> bool: ...

    def feed(self, event: str, data: str) -> list[Delta]:
        """The deltas for one event; raises UpstreamFailure for an error event."""
        ...

    def eof(self) -> list[Delta]:
        """The body ended before ``done``: the last deltas if that is acceptable for the
        flavour, else raise UpstreamFailure (stream ended early)."""
        ...


def _sendable(secret: str) -> bool:
    """Whether ``secret`` can go in an HTTP header as is: printable ASCII, no spaces."""
    return secret.isascii() and secret.isprintable() and " " not in secret


async def read_bounded(response: httpx.Response, limit: int = ERROR_BODY_LIMIT) -> bytes:
    """At most ``limit`` bytes of the body; a connection dropped meanwhile keeps what came."""
    buffer = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            buffer += chunk
            if len(buffer) >= limit:
                break
    except (httpx.TransportError, BodyError):
        pass  # an error body is read for its message: what came is enough
    return bytes(buffer[:limit])


async def _failure_from_response(response: httpx.Response, secret: str) -> UpstreamFailure:
    body = await read_bounded(response)
    failure = parse_failure(
        response.status_code, response.headers, body, now=time.time(), secrets=[secret]
    )
    return UpstreamFailure(failure, mid_stream=False)


async def _unexpected_content_type(response: httpx.Response, secret: str) -> UpstreamFailure:
    """A 2xx that is not an event stream: an error JSON from a proxy, or a host that
    ignored ``stream: true``. Neither can be streamed to the editor."""
    body = await read_bounded(response)
    failure = parse_failure(
        response.status_code, response.headers, body, now=time.time(), secrets=[secret]
    )
    if failure.error_type is None:
        content_type = redact(response.headers.get("content-type", "none"), [secret])[:100]
        failure = local_failure(
            "unexpected_response",
            f"expected an event stream, got content-type {content_type}",
            status=response.status_code,
        )
    return UpstreamFailure(failure, mid_stream=False)


def _warn_if_empty(delta: Delta, url: str, body: Mapping[str, Any]) -> None:
    """Log a warning for an answer that ended with no content at all.

    A provider that "stops normally" after sending nothing we could read is more often a
    wire format we do not understand (a new shape of ``delta.content``) than a model
    with nothing to say; passing it on silently as a success hides the difference.
    """
    if not isinstance(delta, MessageEnd) or delta.message.content:
        return
    model = body.get("model")
    log.warning(
        "%s answered %s with no text, thinking or tool call (stop reason %s): the answer "
        "is empty; if the model did answer, its stream format was not understood",
        urlsplit(url).netloc,
        model if isinstance(model, str) else "a request",
        delta.message.stop_reason,
    )


def _with_windows(delta: Delta, windows: tuple[Window, ...]) -> Delta:
    if windows and isinstance(delta, MessageEnd):
        return MessageEnd(delta.message, windows)
    return delta


async def _drain(events: AsyncIterator[Any]) -> None:
    """Read what follows the message's end (the chunked body's terminator), briefly.

    A response closed before its body ended takes its connection with it: the next
    request would pay a new TCP (and TLS) handshake before its first delta. A provider
    that keeps talking after the end is cut off after :data:`DRAIN_SECONDS`.
    """
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in events:
                pass
    except (TimeoutError, httpx.TransportError, BodyError):
        pass  # the answer is complete: only the connection's reuse is lost


async def stream_deltas(
    client: httpx.AsyncClient,
    url: str,
    *,
    headers: Mapping[str, str],
    body: Mapping[str, Any],
    parser: Parser,
    secret: str,
) -> AsyncGenerator[Delta, None]:
    """POST ``body`` to ``url`` and yield the parser's deltas until the message ends.

    Every failure leaves as UpstreamFailure with ``secret`` redacted from its message.
    Leaving the iterator early (or cancelling) closes the connection: the request runs
    inside ``client.stream``'s context.
    """
    if not _sendable(secret):
        raise unsendable_credential()
    request_headers = {
        **headers,
        "content-type": "application/json",
        "accept": "text/event-stream",
        "user-agent": USER_AGENT,
    }
    # ensure_ascii=False: the user's text goes out as UTF-8, not \u escapes (smaller).
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    answered = False  # the provider said 2xx: a failure from here on is mid-stream
    status: int | None = None
    try:
        async with client.stream("POST", url, headers=request_headers, content=content) as resp:
            if not resp.is_success:
                raise await _failure_from_response(resp, secret)
            if "text/event-stream" not in resp.headers.get("content-type", ""):
                raise await _unexpected_content_type(resp, secret)
            answered, status = True, resp.status_code
            # Every answer's windows go to the key pool with its MessageEnd (headroom).
            windows = read_windows(resp.headers, time.time())
            async with aclosing(EventSource(resp).aiter_sse()) as events:
                async for sse in events:
                    for delta in parser.feed(sse.event, sse.data):
                        _warn_if_empty(delta, url, body)
                        yield _with_windows(delta, windows)
                    if parser.done:
                        await _drain(events)
                        return
            for delta in parser.eof():
                _warn_if_empty(delta, url, body)
                yield _with_windows(delta, windows)
    except UpstreamFailure as exc:
        clean = redacted(exc.failure, secret)
        if clean is exc.failure:
            raise
        raise UpstreamFailure(clean, mid_stream=exc.mid_stream, retryable=exc.retryable) from None
    except httpx.TransportError as exc:
        raise transport_failure(exc, secret, mid_stream=answered) from exc
    except BodyTooLarge as exc:  # the engine's client bounds every body (see _bounded)
        raise response_too_large(str(exc), mid_stream=answered, status=status) from None
    except BodyError as exc:
        raise malformed_stream(str(exc)) from None
