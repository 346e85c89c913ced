"""Shared by the fake provider's tests: keys, and a raw HTTP client that shows exactly
which bytes and chunks went over the wire (written independently of the fake's code,
so that a bug in one cannot hide a bug in the other)."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

# Long enough to get a fingerprint with a tail, and distinct in their last four.
KEY = "sk-ant-api03-fake-test-key-0001"
KEY2 = "sk-ant-api03-fake-test-key-0002"
OPENAI_KEY = "sk-proj-fake-openai-key-00000003"
VERSION = "2023-06-01"


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    chunks: list[bytes] = field(default_factory=list)
    body: bytes = b""
    complete: bool = False
    """True when a chunked body ended with the last chunk (or a sized body was whole)."""
    first_byte_after: float | None = None
    """Seconds from sending the request to the first response byte."""

    def json(self) -> Any:
        return json.loads(self.body)

    def sse(self) -> list[tuple[str | None, str]]:
        """(event, data) pairs, parsed the simple way: blank-line separated blocks."""
        out = []
        for block in self.body.decode().split("\n\n"):
            if not block:
                continue
            event, data = None, []
            for line in block.split("\n"):
                name, _, value = line.partition(": ")
                if name == "event":
                    event = value
                elif name == "data":
                    data.append(value)
            out.append((event, "\n".join(data)))
        return out


def anthropic_headers(key: str = KEY) -> dict[str, str]:
    return {"x-api-key": key, "anthropic-version": VERSION}


def messages_body(stream: bool = True, **extra: Any) -> dict[str, Any]:
    body = {
        "model": "claude-test",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hello"}],
        "stream": stream,
    }
    body.update(extra)
    return body


class RawClient:
    """One keep-alive connection, read byte by byte where it matters."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = bytearray()
        self.pos = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, method: str, path: str, headers: dict[str, str], body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        lines = [f"{method} {path} HTTP/1.1", "host: fake"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"content-length: {len(data)}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + data)

    def _fill(self) -> bool:
        if self.pos > 65536:  # compact now and then: slicing per line would be quadratic
            del self.buf[: self.pos]
            self.pos = 0
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def _line(self) -> bytes | None:
        while (end := self.buf.find(b"\r\n", self.pos)) < 0:
            if not self._fill():
                return None
        line = bytes(self.buf[self.pos : end])
        self.pos = end + 2
        return line

    def _exactly(self, n: int) -> bytes | None:
        while len(self.buf) - self.pos < n:
            if not self._fill():
                return None
        data = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return data

    def request(
        self, method: str, path: str, headers: dict[str, str], body: Any = None
    ) -> RawResponse:
        started = time.monotonic()
        self.send(method, path, headers, body)
        return self.read_response(started)

    def read_response(self, started: float | None = None) -> RawResponse:
        started = time.monotonic() if started is None else started
        if len(self.buf) == self.pos and not self._fill():
            raise ConnectionError("closed before a response")
        first = time.monotonic() - started
        status_line = self._line()
        assert status_line is not None
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := self._line()) is not None and line:
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        response = RawResponse(status, headers, first_byte_after=first)
        if headers.get("transfer-encoding") == "chunked":
            while True:
                size_line = self._line()
                if size_line is None:
                    break  # dropped mid-body
                size = int(size_line, 16)
                if size == 0:
                    self._line()
                    response.complete = True
                    break
                data = self._exactly(size)
                if data is None or self._line() is None:
                    break
                response.chunks.append(data)
            response.body = b"".join(response.chunks)
            return response
        length = int(headers.get("content-length", "0"))
        data = self._exactly(length)
        response.body = data or b""
        response.complete = data is not None
        return response
