"""Handing a stream's bytes to the client in as few writes as keep them prompt.

A provider sends one SSE event per HTTP chunk: thousands of small chunks a second on a
fast answer. Written one by one, each costs the gateway a system call and the client
the parsing of one more HTTP chunk. Here the reader only appends to a buffer, and a
writer task sends what has gathered whenever it gets to run, which is as soon as the
reader waits for the network: a chunk that comes alone goes out alone and at once,
a burst goes out as one write. The bytes and their order are unchanged.

The buffer is bounded (``limit``): past it the reader waits for the writer, so a client
that reads slowly slows the upstream read instead of filling memory.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

__all__ = ["Pump"]


class Pump:
    """``async with Pump(out) as pump: await pump.put(data)``; leaving it waits until
    every byte was written (or raises what the writer met, such as the client gone)."""

    def __init__(self, out: web.StreamResponse, limit: int = 256 * 1024) -> None:
        self.out = out
        self.limit = limit
        self._buffer = bytearray()
        self._ready = asyncio.Event()  # something to write, or the end
        self._room = asyncio.Event()  # the buffer is under its limit
        self._room.set()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Pump:
        self._task = asyncio.create_task(self._write())
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        task = self._task
        assert task is not None
        if exc_type is not None and (
            task.done() or isinstance(exc, asyncio.CancelledError | ConnectionError)
        ):
            # Cancelled (the client hung up), or the writer failed: stop writing.
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
            return
        # The end, or the upstream broke off: what was read before still goes out first.
        self._closing = True
        self._ready.set()
        if exc_type is None:
            await task  # raises what the writer met
            return
        with contextlib.suppress(ConnectionError):
            await task  # the reader's own error is the one to raise

    async def put(self, data: bytes) -> None:
        task = self._task
        assert task is not None
        if task.done():
            task.result()  # the writer failed (the client went away): say so here
        if not data:
            return
        self._buffer += data
        self._ready.set()
        if len(self._buffer) > self.limit:
            self._room.clear()
            room = asyncio.ensure_future(self._room.wait())
            try:
                await asyncio.wait({room, task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                room.cancel()
            if task.done():
                task.result()

    async def _write(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._buffer:
                data = bytes(self._buffer)
                self._buffer.clear()
                self._room.set()
                await self.out.write(data)
            if self._closing:
                return
