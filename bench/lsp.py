"""A lean editor-side JSON-RPC client over a subprocess's stdio, for measuring.

pygls's own client parses every message into attrs classes; at 100k deltas per
second that client would be the bottleneck. This one parses LSP frames straight
out of the pipe and stamps each message with ``time.perf_counter_ns()`` once it
is decoded, which is when an editor could act on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["REPO_ROOT", "LspProcess", "RpcError", "cpu_seconds", "rss_kib"]

# Where ``python -m bench.…`` finds this package, whatever the caller's directory.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (method, params, perf_counter_ns when decoded)
NotificationHandler = Callable[[str, Any, int], None]

_CL = b"Content-Length: "


class RpcError(Exception):
    def __init__(self, error: Mapping[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.data = error.get("data")


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """``VmRSS`` (or ``VmHWM``, the peak) of a live process, in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(f"{field} not in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used so far, to the nanosecond where
    the scheduler says (``schedstat`` of each live thread), else in clock ticks."""
    try:
        total = 0
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        pass
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _content_length(header: bytes) -> int:
    if header.startswith(_CL) and b"\r\n" not in header:
        return int(header[len(_CL) :])
    for line in header.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise ValueError(f"frame without Content-Length: {header!r}")


class _Pipes(asyncio.SubprocessProtocol):
    def __init__(self, client: LspProcess) -> None:
        self.client = client
        self.exited = asyncio.get_running_loop().create_future()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 1:
            self.client._feed(data)
        else:
            self.client.stderr += data

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)
        self.client._fail_pending(ConnectionError("the server exited"))


class LspProcess:
    """``proc = await LspProcess.spawn(argv, env)``; ``await proc.request(...)``."""

    def __init__(self, on_notification: NotificationHandler | None) -> None:
        self.on_notification = on_notification
        self.stderr = bytearray()
        self.notifications = 0
        self._buf = b""
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self._transport: asyncio.SubprocessTransport | None = None
        self._pipes: _Pipes | None = None

    @classmethod
    async def spawn(
        cls,
        argv: Sequence[str],
        env: Mapping[str, str],
        on_notification: NotificationHandler | None = None,
    ) -> LspProcess:
        self = cls(on_notification)
        loop = asyncio.get_running_loop()
        transport, pipes = await loop.subprocess_exec(
            lambda: _Pipes(self),
            *argv,
            env=dict(env),
            cwd=REPO_ROOT,
            stdin=-1,
            stdout=-1,
            stderr=-1,
        )
        self._transport, self._pipes = transport, pipes
        return self

    @classmethod
    def python(cls, *args: str) -> list[str]:
        return [sys.executable, *args]

    @property
    def pid(self) -> int:
        assert self._transport is not None
        return self._transport.get_pid()

    # -- reading --

    def _feed(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        pos, size = 0, len(buf)
        loads, perf = json.loads, time.perf_counter_ns
        while (sep := buf.find(b"\r\n\r\n", pos)) >= 0:
            end = sep + 4 + _content_length(buf[pos:sep])
            if end > size:
                break
            message = loads(buf[sep + 4 : end])
            pos = end
            self._dispatch(message, perf())
        self._buf = buf[pos:]

    def _dispatch(self, message: dict[str, Any], now: int) -> None:
        method = message.get("method")
        if method is None:
            future = self._pending.pop(message.get("id"), None)  # type: ignore[arg-type]
            if future is not None and not future.done():
                if "error" in message:
                    future.set_exception(RpcError(message["error"]))
                else:
                    future.set_result(message.get("result"))
        elif "id" in message:  # a request from the server: answer it, we support nothing
            self._write({"jsonrpc": "2.0", "id": message["id"], "result": None})
        else:
            self.notifications += 1
            if self.on_notification is not None:
                self.on_notification(method, message.get("params"), now)

    def _fail_pending(self, exc: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(exc)
        self._pending.clear()

    # -- writing --

    def _write(self, message: dict[str, Any]) -> None:
        body = json.dumps(message, separators=(",", ":")).encode()
        assert self._transport is not None
        stdin = self._transport.get_pipe_transport(0)
        assert isinstance(stdin, asyncio.WriteTransport)
        stdin.write(b"Content-Length: %d\r\n\r\n%b" % (len(body), body))

    def send_request(self, method: str, params: Any) -> asyncio.Future[Any]:
        """Send a request now; the future of its result."""
        self._next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        self._write({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        return future

    async def request(self, method: str, params: Any, timeout: float = 60.0) -> Any:
        return await asyncio.wait_for(self.send_request(method, params), timeout)

    def notify(self, method: str, params: Any) -> None:
        self._write({"jsonrpc": "2.0", "method": method, "params": params})

    async def initialize(self, timeout: float = 30.0) -> Any:
        params = {
            "processId": os.getpid(),
            "capabilities": {},
            "initializationOptions": {"editorInfo": {"name": "bench", "version": "0"}},
        }
        return await self.request("initialize", params, timeout)

    # -- ending --

    async def close(self, timeout: float = 5.0) -> int | None:
        """``shutdown`` and ``exit``, as an editor does; killed if it does not go."""
        transport, pipes = self._transport, self._pipes
        if transport is None or pipes is None:
            return None
        if transport.get_returncode() is None:
            with contextlib.suppress(Exception):
                await self.request("shutdown", None, timeout)
                self.notify("exit", None)
            try:
                await asyncio.wait_for(asyncio.shield(pipes.exited), timeout)
            except TimeoutError:
                transport.kill()
                await pipes.exited
        transport.close()
        return transport.get_returncode()
