"""Hostile stream tails: an SSE line that never ends, a stream of filler that never
ends, and the same as a gzip bomb (a few KiB on the wire per MiB decompressed).

Each is what a broken or malicious host could send inside a real 200 answer, in the
endpoint's own wire format; the fake sends it until the client hangs up.
"""

from __future__ import annotations

import functools
import zlib
from typing import Literal

__all__ = ["BLOCK", "Endless", "StreamEncoder", "endless_unit", "line_head"]

Endless = Literal["line", "events"]

BLOCK = 1 << 20  # uncompressed bytes per endless write when compressed
_RAW_BLOCK = 64 * 1024  # uncompressed writes: a loopback socket's worth at a time

# The start of a text delta whose JSON string never closes.
_LINE_HEADS = {
    "anthropic": (
        b"event: content_block_delta\n"
        b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"'
    ),
    "openai": (
        b'data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","created":0,'
        b'"model":"fake","choices":[{"index":0,"delta":{"content":"'
    ),
}
# Events every parser skips: Anthropic's ping, and the comment line OpenAI-compatible
# hosts (OpenRouter) send while they wait.
_FILLERS = {
    "anthropic": b'event: ping\ndata: {"type":"ping"}\n\n',
    "openai": b": keep-alive\n\n",
}


def line_head(flavour: str, mode: Endless) -> bytes:
    return _LINE_HEADS[flavour] if mode == "line" else b""


def _filler(flavour: str, mode: Endless, size: int) -> bytes:
    unit = b"a" if mode == "line" else _FILLERS[flavour]
    return unit * (size // len(unit))


@functools.cache
def _compressed_block(flavour: str, mode: Endless) -> bytes:
    # A fresh compressor ended with a full flush: deflate blocks that refer to nothing
    # before them and end on a byte boundary, so the same bytes can follow each other
    # any number of times inside one gzip stream.
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(_filler(flavour, mode, BLOCK)) + compressor.flush(zlib.Z_FULL_FLUSH)


class StreamEncoder:
    """The body as sent: as is, or gzip with a sync flush after every write (so the
    client can decompress each event as it arrives, as real compressed SSE does)."""

    def __init__(self, gzip: bool) -> None:
        self._gzip = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16) if gzip else None

    @property
    def header(self) -> tuple[str, str] | None:
        return ("content-encoding", "gzip") if self._gzip is not None else None

    def encode(self, data: bytes) -> bytes:
        if self._gzip is None:
            return data
        return self._gzip.compress(data) + self._gzip.flush(zlib.Z_SYNC_FLUSH)


def endless_unit(encoder: StreamEncoder, flavour: str, mode: Endless) -> bytes:
    """What to write again and again, already encoded."""
    if encoder.header is None:
        return _filler(flavour, mode, _RAW_BLOCK)
    return _compressed_block(flavour, mode)
