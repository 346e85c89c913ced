"""The stdin reader under pygls: one thread hop per message, not one per call."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

from sidecar.rpc.framing import FramedReader, FramedStdin
from sidecar.rpc.stdio import InputMeter


class CountingExecutor(Executor):
    def __init__(self) -> None:
        self.inner = ThreadPoolExecutor(1)
        self.calls = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.calls += 1
        return self.inner.submit(fn, *args, **kwargs)


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n%b" % (len(body), body)


async def read_message(reader: FramedReader) -> bytes:
    # As pygls's run_async reads: header lines up to the blank one, then the body.
    length = 0
    while (line := await reader.readline()).strip():
        length = int(line.split(b":")[1])
    return await reader.readexactly(length)


async def test_messages_that_arrive_whole_are_read_on_the_loop_without_a_thread() -> None:
    read_end, write_end = os.pipe()
    bodies = [b'{"jsonrpc":"2.0","id":%d,"method":"sidecar/status"}' % i for i in range(3)]
    executor = CountingExecutor()
    with open(read_end, "rb", buffering=0) as raw:
        reader = FramedReader(FramedStdin(InputMeter(raw)), executor)
        reading = asyncio.ensure_future(read_message(reader))
        await asyncio.sleep(0.05)  # waiting for the client, on the loop
        os.write(write_end, frame(bodies[0]))
        got = [await asyncio.wait_for(reading, 5)]
        os.write(write_end, b"".join(frame(b) for b in bodies[1:]))  # two in one write
        got += [await read_message(reader) for _ in bodies[1:]]
    os.close(write_end)
    executor.inner.shutdown()
    assert got == bodies
    # pygls's own reader: three hops (header, blank line, body) for each message.
    assert executor.calls == 0


async def test_an_unusual_header_is_read_by_the_lenient_parser_in_one_hop_each() -> None:
    read_end, write_end = os.pipe()
    bodies = [b'{"jsonrpc":"2.0","id":%d,"method":"sidecar/status"}' % i for i in range(3)]
    os.write(write_end, b"".join(b"content-length:%d\n\n%b" % (len(b), b) for b in bodies))
    executor = CountingExecutor()
    with open(read_end, "rb", buffering=0) as raw:
        reader = FramedReader(FramedStdin(InputMeter(raw)), executor)
        got = [await read_message(reader) for _ in bodies]
    os.close(write_end)
    executor.inner.shutdown()
    assert got == bodies
    assert executor.calls == len(bodies)


async def test_a_body_still_on_its_way_is_waited_for_off_the_loop() -> None:
    read_end, write_end = os.pipe()
    body = b'{"jsonrpc":"2.0","id":1,"method":"x","params":"' + b"y" * 100 + b'"}'
    data = frame(body)
    os.write(write_end, data[:30])  # the header and a little of the body
    executor = CountingExecutor()
    with open(read_end, "rb", buffering=0) as raw:
        reader = FramedReader(FramedStdin(InputMeter(raw)), executor)
        reading = asyncio.ensure_future(read_message(reader))
        await asyncio.sleep(0.05)
        assert not reading.done()  # the loop was not blocked: this test runs
        os.write(write_end, data[30:])
        assert await asyncio.wait_for(reading, 5) == body
    os.close(write_end)
    executor.inner.shutdown()
