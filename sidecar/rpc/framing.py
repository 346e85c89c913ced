"""LSP framing as editors really write it, re-framed for pygls's strict reader.

pygls's reader loop only knows ``Content-Length: N\\r\\n`` spelt exactly so: a
client writing ``content-length:60`` (header names are case-insensitive, and the
space after the colon is optional) is never framed, and its body is then read as
a header line glued to the next message's header, so the server stays deaf for
good. :class:`FramedStdin` sits between standard input and pygls: it parses each
header block leniently and hands pygls one canonical ``Content-Length`` line, a
blank line and the body. What it cannot read at all becomes a small stand-in body
that :class:`sidecar.rpc.rpcio.SidecarProtocol` answers with -32700 (``id: null``),
and the reader skips input until the next ``Content-Length`` header, even one
glued to the end of a garbage line: a client always hears back, and the next
well-formed message is served.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, BinaryIO

from sidecar.rpc.stdio import InputMeter

__all__ = [
    "MAX_HEADER_LINE",
    "MAX_MESSAGE_BYTES",
    "OVERSIZE",
    "UNREADABLE",
    "FramedReader",
    "FramedStdin",
    "frame",
]

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # no editor sends a request anywhere near this
MAX_HEADER_LINE = 64 * 1024
# Keys of the stand-in bodies (JSON objects no client has a reason to send).
OVERSIZE = "sidecar.oversize"  # {OVERSIZE: declared length}: answered -32600
UNREADABLE = "sidecar.unreadable"  # {UNREADABLE: reason}: answered -32700


def frame(message: Any, default: Callable[[Any], Any] | None = None) -> str:
    """One LSP frame of ``message``, as the server writes it: a ``Content-Length``
    header and a compact, ASCII-escaped JSON body (so its length in characters is its
    length in bytes). ``default`` turns what JSON has no form for into what it has."""
    body = json.dumps(message, separators=(",", ":"), default=default)
    return f"Content-Length: {len(body)}\r\n\r\n{body}"


# RFC 7230 field names; the value is whatever follows the colon, trimmed.
_HEADER = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*:[ \t]*(.*?)[ \t]*")
# Where a Content-Length header may start after garbage: at the end of a line, as
# when a body that was never framed is followed by the next message's header.
_TRAILING_LENGTH = re.compile(rb"content-length[ \t]*:[ \t]*([0-9]{1,20})[ \t]*$", re.IGNORECASE)
_DIGITS = re.compile(rb"[0-9]{1,20}")


class FramedStdin:
    """Standard input for pygls's reader: lenient headers, bounded bodies, never deaf.

    pygls calls :meth:`readline` until it has seen ``Content-Length`` and a blank
    line, then :meth:`read` with that length; both run on one reader thread, one
    call at a time. A body over ``limit`` is answered -32600 at once and its bytes
    are discarded as they arrive, so a huge declared length allocates nothing.
    """

    def __init__(self, raw: BinaryIO, limit: int = MAX_MESSAGE_BYTES) -> None:
        self._raw = raw
        self._limit = limit
        self._lines: collections.deque[bytes] = collections.deque()  # for pygls, in order
        self._stand_in: bytes | None = None  # the next body, when it is not the client's
        self._skip = 0  # bytes of an oversized body still to discard
        self._carried: int | None = None  # a Content-Length found after reported garbage
        self._garbage = False  # reported: skip silently up to the next Content-Length

    # -- pygls's side -------------------------------------------------------------

    def readline(self) -> bytes:
        if not self._lines:
            self._next_message()
        return self._lines.popleft() if self._lines else b""

    def read(self, n: int) -> bytes:
        if self._stand_in is not None:
            body, self._stand_in = self._stand_in, None
            return body
        return self._raw.read(n)

    def close(self) -> None:
        self._raw.close()

    @property
    def raw(self) -> BinaryIO:
        return self._raw

    def pending(self) -> bool:
        """Whether parsing is between messages' usual states: a stand-in body, bytes of
        an oversized body to skip, garbage being skipped or a length carried over."""
        return (
            self._stand_in is not None
            or self._skip > 0
            or self._garbage
            or self._carried is not None
        )

    def line_ready(self) -> bool:
        """Whether :meth:`readline` returns without reading input (a header is queued)."""
        return bool(self._lines)

    def body_ready(self, n: int) -> bool:
        """Whether ``read(n)`` returns without waiting: a stand-in body, or the whole
        body buffered already (by a raw input that says how much it holds)."""
        return self._stand_in is not None or getattr(self._raw, "buffered", 0) >= n

    # -- parsing --------------------------------------------------------------------

    def _raw_line(self) -> bytes:
        while self._skip > 0:
            chunk = self._raw.read(min(self._skip, 1 << 20))
            if not chunk:
                self._skip = 0
                break
            self._skip -= len(chunk)
        return self._raw.readline(MAX_HEADER_LINE)

    def _frame(self, length: int, stand_in: dict[str, object] | None = None) -> None:
        if stand_in is not None:
            self._stand_in = json.dumps(stand_in).encode()
            length = len(self._stand_in)
        self._lines.extend((b"Content-Length: %d\r\n" % length, b"\r\n"))

    def _unreadable(self, reason: str) -> None:
        self._frame(0, {UNREADABLE: reason})

    def _next_message(self) -> None:
        """Queue the lines of the next message for pygls; nothing at end of input."""
        length, self._carried = self._carried, None
        headers = length is not None  # a header block has begun
        while True:
            line = self._raw_line()
            if not line:
                return
            text = line.rstrip(b"\r\n")
            if not text:
                if self._garbage or not headers:
                    continue  # a blank line between messages, or inside skipped garbage
                if length is None:  # its body follows, unframed: skip it as garbage
                    self._garbage = True
                    self._unreadable("a header block without Content-Length")
                elif length == 0:
                    self._unreadable("an empty body")
                elif length > self._limit:
                    self._skip = length
                    self._frame(0, {OVERSIZE: length})
                else:
                    self._frame(length)
                return
            header = _HEADER.fullmatch(text)
            if header is not None:
                if header.group(1).lower() != b"content-length":
                    headers = headers or not self._garbage  # Content-Type and the like
                    continue
                if _DIGITS.fullmatch(header.group(2)):
                    length, headers, self._garbage = int(header.group(2)), True, False
                    continue
            glued = _TRAILING_LENGTH.search(text)
            if self._garbage:
                if glued is not None:
                    length, headers, self._garbage = int(glued.group(1)), True, False
                continue
            # The first unreadable line of a run: answered at once, with one -32700
            # for the whole run; the next read resumes at the next Content-Length.
            if glued is not None:
                self._carried = int(glued.group(1))
            else:
                self._garbage = True
            self._unreadable("a header line that cannot be read")
            return


class FramedReader:
    """pygls's async reader (``readline``, ``readexactly``) over a :class:`FramedStdin`,
    one thread hop per message instead of one per call.

    pygls's own reader runs every call in a worker thread: a header line, the blank
    line and the body each wait for the thread and then for a turn of the event loop,
    three hops before a request is even parsed (on a busy machine, milliseconds the
    user waits before the first delta). Here only a call that would wait for input
    goes to the thread; the blank line after a header block and a body already
    buffered are returned at once. Which thread reads, and when the input counts as
    caught up (:class:`sidecar.rpc.stdio.InputMeter`), are as before.
    """

    def __init__(self, stdin: FramedStdin, executor: Executor | None = None) -> None:
        self._stdin = stdin
        self._executor = executor

    async def readline(self) -> bytes:
        if self._stdin.line_ready() or await self._received():
            return self._stdin.readline()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._stdin.readline)

    async def _received(self) -> bool:
        """Whether a whole message is buffered, waited for on the loop when the input
        can be watched there (:meth:`sidecar.rpc.stdio.InputMeter.receive`): then no
        thread is involved at all. A message that arrives in pieces, or in an unusual
        framing, is read in the thread as before."""
        meter = self._stdin.raw
        if not isinstance(meter, InputMeter) or self._stdin.pending():
            return False
        if not meter.whole_message() and (meter.buffered or not await meter.receive()):
            return False
        return meter.whole_message()

    async def readexactly(self, n: int) -> bytes:
        if self._stdin.body_ready(n):
            return self._stdin.read(n)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._stdin.read, n)
