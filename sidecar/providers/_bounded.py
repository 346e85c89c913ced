"""A provider's response body read with bounded memory, whatever the provider sends.

httpx decompresses each network chunk whole (a 64 KiB chunk of a gzip bomb becomes
64 MiB at once) and httpx-sse buffers a line until it ends (an endless line grows
without bound). :func:`bounded_responses` is a response hook for the engine's client
that takes decompression over, in steps of at most :data:`PIECE` bytes, and counts
what comes out: past :attr:`BodyLimits.max_response` bytes of a response, or
:attr:`BodyLimits.max_event` bytes of one SSE event (and so of one line), reading
stops with :class:`BodyTooLarge`. Between the steps of one expanding chunk the event
loop gets a turn, so a bomb cannot starve the other requests.

Only the encodings decompressed here (gzip, deflate) are asked for; a response in
another one is refused with :class:`BodyUndecodable` rather than read unbounded.
"""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx

from sidecar.limits import EVENT_ENV, RESPONSE_ENV, BodyLimits, describe

__all__ = [
    "ACCEPT_ENCODING",
    "PIECE",
    "BodyError",
    "BodyTooLarge",
    "BodyUndecodable",
    "bounded_responses",
]

ACCEPT_ENCODING = "gzip, deflate"
PIECE = 64 * 1024  # the most one decompression step may produce

# The end of an event: a line ending followed by another (an empty line), whichever of
# CRLF, LF or CR each is. Atomic groups: CRLF is one line ending, never CR then LF.
_BLANK_LINE = re.compile(rb"(?>\r\n|\r|\n)(?>\r\n|\r|\n)")


class BodyError(Exception):
    """The body cannot be read within the rules; the message is for the user."""


class BodyTooLarge(BodyError):
    """An SSE event or the whole response passed its limit."""


class BodyUndecodable(BodyError):
    """A content encoding we do not decompress, or compressed data that is corrupt."""


class _Inflater:
    """zlib in bounded steps: gzip, or deflate with or without its zlib header."""

    def __init__(self, encoding: str) -> None:
        self._deflate = encoding == "deflate"
        # Deflate is meant to carry a zlib header, but some servers send raw deflate.
        wbits = zlib.MAX_WBITS if self._deflate else zlib.MAX_WBITS | 16
        self._zlib = zlib.decompressobj(wbits)
        self._started = False

    def step(self, data: bytes) -> tuple[bytes, bytes]:
        """At most PIECE bytes of output; the input left for the next step."""
        try:
            out = self._zlib.decompress(data, PIECE)
        except zlib.error:
            if not (self._deflate and not self._started):
                raise BodyUndecodable("the provider's compressed response is corrupt") from None
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            self._deflate = False  # raw deflate from here on; a second failure is final
            return self.step(data)
        self._started = True
        return out, self._zlib.unconsumed_tail


class _Identity:
    def step(self, data: bytes) -> tuple[bytes, bytes]:
        return data[:PIECE], data[PIECE:]


def _decoder(content_encoding: str) -> _Inflater | _Identity:
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return _Identity()
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return _Inflater("deflate" if codings[0] == "deflate" else "gzip")
    shown = content_encoding.strip()[:40]
    raise BodyUndecodable(f"the provider answered in content-encoding {shown!r}, not gzip")


class _EventMeter:
    """How many bytes the current SSE event has so far: since the last empty line."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._since = 0
        self._tail = b""  # the last bytes seen: a line ending may be split across pieces

    def add(self, piece: bytes) -> None:
        window = self._tail + piece
        end = -1
        for match in _BLANK_LINE.finditer(window):
            end = match.end()
        self._since = self._since + len(piece) if end < 0 else len(window) - end
        self._tail = window[-3:]
        if self._since > self.limit:
            raise BodyTooLarge(
                f"the provider sent an SSE line or event longer than {describe(self.limit)}; "
                f"reading stopped (limit: {EVENT_ENV})"
            )


class _BoundedStream(httpx.AsyncByteStream):
    def __init__(
        self, inner: httpx.AsyncByteStream, encoding: str, limits: BodyLimits, sse: bool
    ) -> None:
        self._inner = inner
        self._encoding = encoding
        self._limits = limits
        self._sse = sse

    async def __aiter__(self) -> AsyncIterator[bytes]:
        decoder = _decoder(self._encoding)
        meter = _EventMeter(self._limits.max_event) if self._sse else None
        limit = self._limits.max_response
        total = 0
        async for chunk in self._inner:
            data = chunk
            while True:
                piece, data = decoder.step(data)
                if piece:
                    total += len(piece)
                    if total > limit:
                        raise BodyTooLarge(
                            f"the provider's response grew past {describe(limit)} "
                            f"(decompressed); reading stopped (limit: {RESPONSE_ENV})"
                        )
                    if meter is not None:
                        meter.add(piece)
                    yield piece
                # A full piece may leave output inside zlib even with no input left.
                if not data and len(piece) < PIECE:
                    break
                # One chunk is expanding into many pieces: let other requests run.
                await asyncio.sleep(0)

    async def aclose(self) -> None:
        await self._inner.aclose()


def bounded_responses(limits: BodyLimits) -> Callable[[httpx.Response], Awaitable[None]]:
    """A response hook (``event_hooks={"response": [...]}``) that bounds every body."""

    async def hook(response: httpx.Response) -> None:
        stream = response.stream
        if not isinstance(stream, httpx.AsyncByteStream):
            return
        encoding = response.headers.get("content-encoding", "")
        sse = "text/event-stream" in response.headers.get("content-type", "")
        response.stream = _BoundedStream(stream, encoding, limits, sse)
        # Decompressed here: httpx must not decompress again.
        if "content-encoding" in response.headers:
            del response.headers["content-encoding"]

    return hook
