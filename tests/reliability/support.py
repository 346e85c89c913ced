"""Helpers of the reliability suite: a raw stdio peer with hard time bounds.

:class:`RawServer` runs ``python -m sidecar`` and talks to it in raw LSP-framed
bytes, as a buggy or hostile editor might. Reading and writing happen on their
own threads, so that no call can block the test for longer than its timeout,
even when the server stops reading or writing: a hung server fails the test, it
never hangs the suite.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import re
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.server.conftest import server_env

# How long the server may take to answer a probe after any hostile input.
PROBE_TIMEOUT = 5.0

_HEADER_END = b"\r\n\r\n"
_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def dumps(message: Any) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


class ServerGone(AssertionError):
    pass


class RawServer:
    """The real server over stdio, driven with raw bytes; every wait is bounded."""

    def __init__(
        self,
        home: Path,
        *,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        stderr: Path | None = None,
        memory_limit: int | None = None,
    ) -> None:
        """``memory_limit``: bytes of address space (RLIMIT_AS) the server may use; past
        it an allocation fails inside the server, never the machine's memory."""
        self.home = home
        self.stderr_path = stderr or home.parent / f"stderr-{os.getpid()}-{id(self)}.log"
        self.stderr_path.parent.mkdir(parents=True, exist_ok=True)
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115  (closed in close())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sidecar", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=server_env(home, env),
            preexec_fn=None if memory_limit is None else _limit_memory(memory_limit),
        )
        self.raw_out = bytearray()  # every byte the server wrote, for secret scans
        self.inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.received: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._writes: queue.Queue[tuple[bytes, threading.Event] | None] = queue.Queue()
        self._write_error: BaseException | None = None
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._writer = threading.Thread(target=self._write_loop, daemon=True)
        self._reader.start()
        self._writer.start()

    # -- threads ----------------------------------------------------------------

    def _read_loop(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buffer = b""
        while True:
            try:
                chunk = self._read_chunk(fd)
            except OSError:
                chunk = b""
            if not chunk:
                self.inbox.put(None)
                return
            self.raw_out += chunk
            buffer += chunk
            while True:
                end = buffer.find(_HEADER_END)
                if end < 0:
                    break
                match = _LENGTH.search(buffer[:end])
                if match is None:  # the server never writes this: make it loud
                    self.inbox.put({"_unframed": buffer[:end].decode(errors="replace")})
                    buffer = buffer[end + 4 :]
                    continue
                length = int(match.group(1))
                if len(buffer) < end + 4 + length:
                    break
                body = buffer[end + 4 : end + 4 + length]
                buffer = buffer[end + 4 + length :]
                try:
                    self.inbox.put(json.loads(body))
                except ValueError:
                    self.inbox.put({"_unparsable": body[:200].decode(errors="replace")})

    def _read_chunk(self, fd: int) -> bytes:
        return os.read(fd, 1 << 20)

    def _write_loop(self) -> None:
        assert self.proc.stdin is not None
        while True:
            item = self._writes.get()
            if item is None:
                return
            data, done = item
            try:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError) as exc:
                self._write_error = exc
            done.set()

    # -- writing ----------------------------------------------------------------

    def write(self, data: bytes, timeout: float = 30.0) -> None:
        """Hand ``data`` to the server; fails if it does not take it within ``timeout``."""
        done = threading.Event()
        self._writes.put((data, done))
        if not done.wait(timeout):
            raise ServerGone(f"the server did not read {len(data)} bytes within {timeout} s")
        if self._write_error is not None:
            raise ServerGone(f"cannot write to the server: {self._write_error!r}")

    def send(self, message: Any) -> None:
        self.write(frame(dumps(message)))

    def next_id(self, prefix: str = "r") -> str:
        return f"{prefix}-{next(self._ids)}"

    # -- reading ----------------------------------------------------------------

    def next_message(self, timeout: float) -> dict[str, Any] | None:
        """The next message, or None on timeout; ServerGone when the output closed."""
        try:
            message = self.inbox.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None
        if message is None:
            self.inbox.put(None)  # stay closed for every later reader
            raise ServerGone(f"the server closed its output (exit code {self.proc.poll()})")
        self.received.append(message)
        return message

    def collect_until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float
    ) -> list[dict[str, Any]]:
        """Every message up to and including the first one matching ``predicate``."""
        deadline = time.monotonic() + timeout
        seen: list[dict[str, Any]] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServerGone(f"no matching message within {timeout} s; saw {seen[-3:]!r}")
            message = self.next_message(left)
            if message is None:
                continue
            seen.append(message)
            if predicate(message):
                return seen

    def drain(self, quiet: float = 0.05) -> list[dict[str, Any]]:
        """What arrives until the server has been quiet for ``quiet`` seconds."""
        seen = []
        while (message := self.next_message(quiet)) is not None:
            seen.append(message)
        return seen

    def request(
        self, method: str, params: Any = None, *, timeout: float = 15.0, msg_id: Any = None
    ) -> dict[str, Any]:
        """Send a request; its response (notifications in between are kept in ``received``)."""
        msg_id = self.next_id() if msg_id is None else msg_id
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return self.collect_until(lambda m: is_response(m, msg_id), timeout)[-1]

    def probe(self, timeout: float = PROBE_TIMEOUT) -> list[dict[str, Any]]:
        """Ask for ``sidecar/status``; the responses that arrived before its answer.

        The server is alive and serving if this returns: its answer came within
        ``timeout``. What came before it is returned for the caller to judge.
        """
        msg_id = self.next_id("probe")
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": "sidecar/status", "params": {}})
        seen = self.collect_until(lambda m: is_response(m, msg_id), timeout)
        answer = seen[-1]
        assert "providers" in answer.get("result", {}), f"the probe failed: {answer!r}"
        return [m for m in seen[:-1] if "method" not in m]

    def initialize(self) -> dict[str, Any]:
        reply = self.request("initialize", {"processId": None, "capabilities": {}})
        self.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        return reply

    # -- the end ----------------------------------------------------------------

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, timeout: float = 10.0) -> int | None:
        """Shut down politely when possible, else kill; the exit code."""
        if self.alive():
            with contextlib.suppress(ServerGone, AssertionError):
                self.request("shutdown", None, timeout=5)
                self.send({"jsonrpc": "2.0", "method": "exit"})
        self._writes.put(None)
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
        self._reader.join(5)
        self._stderr.close()
        return code

    def output_text(self) -> str:
        """Everything the server wrote on stdout and stderr, for secret scans."""
        return self.raw_out.decode(errors="replace") + "\n" + self.stderr_text()

    def stderr_text(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.alive():
            self.close()


def _limit_memory(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def peak_rss(pid: int) -> int:
    """The most resident memory process ``pid`` has used so far (VmHWM), in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None, "no VmHWM in /proc/<pid>/status"
    return int(match.group(1)) * 1024


def is_response(message: dict[str, Any], msg_id: Any) -> bool:
    return (
        "method" not in message
        and message.get("id") == msg_id
        and ("result" in message or "error" in message)
    )


@contextlib.contextmanager
def raw_server(home: Path, **kwargs: Any) -> Iterator[RawServer]:
    server = RawServer(home, **kwargs)
    try:
        server.initialize()
        yield server
    finally:
        if server.alive():
            server.close()


def error_code(message: dict[str, Any]) -> int | None:
    error = message.get("error")
    return error.get("code") if isinstance(error, dict) else None
