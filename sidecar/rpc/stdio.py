"""The sidecar's two pipes to the editor, kept off the event loop's critical path.

- :class:`Outbox` is standard output: ``write`` writes at once only what cannot block
  (a small message to a pipe with room), else appends to a buffer and a thread
  does the blocking writes, so a client that stops reading can never freeze the event
  loop (timeouts, other streams and the status feed keep running). Streams wait on
  :meth:`Outbox.ready` while more than :data:`OUTBOX_LIMIT` bytes are unread, so the
  buffer stays bounded: a stream to a client that does not read is paused (its total
  timeout still runs), not buffered without end.
- :class:`InputMeter` is standard input under pygls's reader. It knows when every
  message received so far has been handled (the reader is about to wait for more),
  which :func:`when_input_caught_up` offers to work that should not run while a burst
  of messages (a cancel storm) is only half read.

Both are installed by :func:`sidecar.rpc.server.serve`; in-process servers (tests) have
neither, and the functions below then do the plain thing at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import select
import threading
from collections import deque
from collections.abc import Callable
from typing import BinaryIO

__all__ = [
    "OUTBOX_LIMIT",
    "InputMeter",
    "Outbox",
    "output_ready",
    "when_input_caught_up",
]

OUTBOX_LIMIT = 4 * 1024 * 1024  # unread bytes before streams pause
# A message's header block as every known client writes it; anything else goes to the
# lenient parser in a thread (sidecar.rpc.framing), which may wait for more input.
_PLAIN_HEAD = re.compile(
    rb"(?:\r\n)*Content-Length: ([0-9]{1,9})\r\n(?:Content-Type: [^\r\n]*\r\n)?\r\n"
)
CLOSE_WAIT = 5.0  # seconds the last output may take to go out at exit

_input: InputMeter | None = None
_output: Outbox | None = None


class Outbox:
    """Standard output for pygls: a buffer drained by a thread, never a blocking write."""

    def __init__(self, out: BinaryIO, limit: int = OUTBOX_LIMIT) -> None:
        self._out = out
        self._fd = out.fileno()
        self._limit = limit
        self._lock = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._pending = 0  # bytes handed to write() and not yet written
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drained: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._drain, name="stdout", daemon=True)
        self._thread.start()

    # pygls's StdoutWriter calls write() then flush() on the loop thread.
    def write(self, data: bytes) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._drained = asyncio.Event()
            self._drained.set()
        with self._lock:
            if not self._pending and len(data) <= select.PIPE_BUF:
                data = self._write_now(data)
                if not data:
                    return
            self._chunks.append(bytes(data))
            self._pending += len(data)
            if self._pending > self._limit:
                assert self._drained is not None
                self._drained.clear()
            self._lock.notify()

    def _write_now(self, data: bytes) -> bytes:
        """Write ``data`` from the loop's thread if that cannot block; what is left.

        Nothing is queued (so nothing is overtaken) and the pipe has room: a write of
        at most ``PIPE_BUF`` bytes to a writable pipe never blocks. This spares a small
        message (a first delta, an answer, a trickle of deltas) the hop to the writer
        thread: on a busy machine a wake-up the user would wait for, and CPU per delta.
        """
        try:
            _, writable, _ = select.select([], [self._fd], [], 0)
            if not writable:
                return data
            return data[os.write(self._fd, data) :]
        except (OSError, ValueError):
            return data  # the thread meets the same error and stops writing

    def flush(self) -> None:
        pass  # the thread writes as soon as it can

    def close(self) -> None:
        """Write what is left, then close: the last answer (to shutdown) must go out.

        Called on exit; a client that does not read gets CLOSE_WAIT seconds, not
        forever, so the process still ends.
        """
        with self._lock:
            self._closed = True
            self._lock.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(CLOSE_WAIT)
        with contextlib.suppress(OSError):
            self._out.close()

    @property
    def pending(self) -> int:
        return self._pending

    async def ready(self) -> None:
        """Return once the client has read enough of what was sent (at once if it has)."""
        if self._drained is not None and not self._drained.is_set():
            await self._drained.wait()

    def _drain(self) -> None:
        fd = self._fd
        while True:
            with self._lock:
                while not self._chunks and not self._closed:
                    self._lock.wait()
                if not self._chunks:
                    return
                data = b"".join(self._chunks)
                self._chunks.clear()
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            except OSError:  # the client is gone: nothing more will be read
                return
            with self._lock:
                self._pending -= len(data)
                below = self._pending <= self._limit // 2
            if below and self._loop is not None and self._drained is not None:
                try:
                    self._loop.call_soon_threadsafe(self._drained.set)
                except RuntimeError:  # the loop has ended
                    return


class InputMeter:
    """Standard input with its own buffer, so it knows when all of it has been read.

    pygls reads one message at a time and handles it before asking for the next; so
    when a read finds nothing buffered and nothing in the pipe, every message that
    had arrived has been handled. The callbacks queued by :meth:`when_caught_up` run
    then, on the event loop.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._fd = raw.fileno()
        self._buffer = bytearray()
        self._eof = False
        self._waiting = False  # the reader thread is waiting for the client
        self._queued: list[Callable[[], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def when_caught_up(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` (on the loop) once every message received so far is handled."""
        self._loop = asyncio.get_running_loop()
        if self._waiting or self._eof:
            callback()
        else:
            self._queued.append(callback)

    def _caught_up(self) -> None:
        queued, self._queued = self._queued, []
        for callback in queued:
            callback()

    def _fill(self) -> None:
        readable, _, _ = select.select([self._fd], [], [], 0)
        if not readable:
            self._waiting = True
            if self._loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop has ended
                    self._loop.call_soon_threadsafe(self._caught_up)
        try:
            chunk = os.read(self._fd, 1 << 16)
        finally:
            self._waiting = False
        if chunk:
            self._buffer += chunk
        else:
            self._eof = True

    async def receive(self) -> bool:
        """On the event loop: wait until the client has written something, and buffer
        what it wrote, with no thread (True); False when the loop cannot watch this
        input (a regular file, say), for the caller to read it in a thread instead.

        A request then costs no thread wake-ups and no hand-over of the interpreter
        lock between a reader thread and the loop: on a busy machine, a good part of
        the time before its first delta."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        if self._eof:
            return True
        readable: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not readable.done():
                readable.set_result(None)

        try:
            loop.add_reader(self._fd, ready)
        except (OSError, ValueError, NotImplementedError):  # not pollable
            return False
        if not self._buffer:  # every message that had arrived was read: see _fill
            self._waiting = True
            loop.call_soon(self._caught_up)
        try:
            await readable
        finally:
            loop.remove_reader(self._fd)
            self._waiting = False
        try:
            chunk = os.read(self._fd, 1 << 16)  # readable: returns at once
        except BlockingIOError:
            return True
        if chunk:
            self._buffer += chunk
        else:
            self._eof = True
        return True

    def whole_message(self) -> bool:
        """Whether a whole message in the usual framing (``Content-Length`` and perhaps
        ``Content-Type``, CRLF, nothing unusual) is buffered, or the input has ended:
        reading it, :class:`~sidecar.rpc.framing.FramedStdin` never waits."""
        if self._eof:
            return True
        head = _PLAIN_HEAD.match(self._buffer)
        if head is None:
            return False
        length = int(head.group(1))
        return 0 < length <= len(self._buffer) - head.end()

    def readline(self, limit: int = -1) -> bytes:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0 and (limit < 0 or end < limit):
                return self._take(end + 1)
            if limit >= 0 and len(self._buffer) >= limit:
                return self._take(limit)
            if self._eof:
                return self._take(len(self._buffer))
            self._fill()

    def read(self, n: int) -> bytes:
        while len(self._buffer) < n and not self._eof:
            self._fill()
        return self._take(min(n, len(self._buffer)))

    @property
    def buffered(self) -> int:
        """Bytes read from the pipe and not yet taken: a read of that many never waits."""
        return len(self._buffer)

    def _take(self, n: int) -> bytes:
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def close(self) -> None:
        os.close(self._fd)


def install(meter: InputMeter | None, outbox: Outbox | None) -> None:
    global _input, _output
    _input, _output = meter, outbox


def when_input_caught_up(callback: Callable[[], None]) -> None:
    """Run ``callback`` once every message the client sent so far has been handled."""
    if _input is None:
        callback()
    else:
        _input.when_caught_up(callback)


async def output_ready() -> None:
    """Wait while the client is behind in reading what the sidecar sent it."""
    if _output is not None:
        await _output.ready()
