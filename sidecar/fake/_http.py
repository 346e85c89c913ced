"""Just enough HTTP/1.1 for the fake: requests in, JSON or chunked SSE out.

Written by hand on asyncio streams so that the fake decides every byte and every
write: where chunks are cut, when a connection stalls or drops.
"""

from __future__ import annotations

import asyncio
import random
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
LAST_CHUNK = b"0\r\n\r\n"

# Statuses that http.HTTPStatus lacks but the providers send.
_EXTRA_REASONS = {529: "Site Overloaded"}


class HttpError(Exception):
    """A request we cannot parse; the connection answers 400 and closes."""


# zlib's window bits for each request encoding a server decodes (RFC 9110 §8.4.1).
_ENCODINGS = {"gzip": 31, "x-gzip": 31, "deflate": 15}


def _decoded(body: bytes, encoding: str) -> bytes:
    """The body as its ``Content-Encoding`` says it was sent: a proxy that forwards a
    decoded body under the client's ``gzip`` header is refused, as a real server would."""
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return body
    if name not in _ENCODINGS:
        raise HttpError(f"unsupported content-encoding {name!r}")
    inflate = zlib.decompressobj(wbits=_ENCODINGS[name])
    try:
        plain = inflate.decompress(body, MAX_BODY_BYTES + 1)
    except zlib.error:
        raise HttpError(f"the body is not {name}") from None
    if not inflate.eof or len(plain) > MAX_BODY_BYTES:
        raise HttpError(f"the body is not {name}, or too large")
    return plain


@dataclass(slots=True)
class Request:
    method: str
    target: str
    version: str
    headers: dict[str, str]
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


@dataclass(slots=True)
class Connection:
    """One client connection: a buffered reader plus the writer.

    While a response is being written, :meth:`wait_closed` reads concurrently to notice a
    client that hangs up; any bytes it reads (a pipelined request) are kept in ``buffer``
    for the next :meth:`read_request`.
    """

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    number: int = 0
    buffer: bytearray = field(default_factory=bytearray)

    async def _fill(self) -> bool:
        data = await self.reader.read(65536)
        if not data:
            return False
        self.buffer += data
        return True

    async def read_request(self) -> Request | None:
        """The next request, or None when the client closed between requests."""
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            if len(self.buffer) > MAX_HEADER_BYTES:
                raise HttpError("request headers too large")
            if not await self._fill():
                if self.buffer.strip():
                    raise HttpError("connection closed inside request headers")
                return None
        head = bytes(self.buffer[:end]).decode("latin-1")
        del self.buffer[: end + 4]
        lines = head.split("\r\n")
        # Tolerate blank lines before a request (RFC 9112 §2.2).
        while lines and not lines[0]:
            lines.pop(0)
        try:
            method, target, version = lines[0].split(" ")
        except (ValueError, IndexError):
            raise HttpError(f"bad request line {lines[:1]!r}") from None
        if not version.startswith("HTTP/1."):
            raise HttpError(f"unsupported version {version!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise HttpError(f"bad header line {line!r}")
            name = name.lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        request = Request(method, target, version, headers)
        if headers.get("expect", "").lower() == "100-continue":
            # curl waits for this before sending a body larger than 1 KiB.
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            request.body = await self._read_chunked()
        elif "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise HttpError("bad content-length") from None
            if not 0 <= length <= MAX_BODY_BYTES:
                raise HttpError("bad content-length")
            request.body = await self._read_exactly(length)
        request.body = _decoded(request.body, headers.get("content-encoding", ""))
        return request

    async def _read_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            if not await self._fill():
                raise HttpError("connection closed inside request body")
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    async def _read_line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            if len(self.buffer) > MAX_HEADER_BYTES or not await self._fill():
                raise HttpError("bad chunked request body")
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return line

    async def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            try:
                size = int(self._strip_ext(await self._read_line()), 16)
            except ValueError:
                raise HttpError("bad chunk size") from None
            if size == 0:
                while await self._read_line():  # trailers, up to the blank line
                    pass
                return bytes(body)
            if len(body) + size > MAX_BODY_BYTES:
                raise HttpError("request body too large")
            body += await self._read_exactly(size)
            if await self._read_line():
                raise HttpError("chunk not followed by CRLF")

    @staticmethod
    def _strip_ext(line: bytes) -> bytes:
        return line.split(b";", 1)[0].strip()

    async def wait_closed(self) -> None:
        """Return once the client has closed (EOF or reset) its side of the connection."""
        try:
            while await self._fill():
                pass
        except (ConnectionError, OSError):
            pass


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return _EXTRA_REASONS.get(status, "Unknown")


def response_head(status: int, headers: Sequence[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason(status)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def chunked_body(pieces: Sequence[bytes]) -> bytes:
    """All pieces as one chunk each plus the last chunk, in a single buffer."""
    parts: list[bytes] = []
    append = parts.append
    for piece in pieces:
        append(b"%x\r\n" % len(piece))
        append(piece)
        append(b"\r\n")
    append(LAST_CHUNK)
    return b"".join(parts)


class Splitter:
    """Cuts a byte stream into transfer chunks of scripted sizes.

    ``feed`` returns the chunks that are complete; the tail waits for more bytes or for
    ``flush`` (called before a stall, a drop or the end, so that the client has every
    byte of the events written so far).
    """

    def __init__(self, split: int | str | Sequence[int] | None, seed: int = 0) -> None:
        self._sizes: Iterator[int] | None
        if split is None:
            self._sizes = None
        elif isinstance(split, int):
            self._sizes = _repeat(split)
        elif split == "random":
            self._sizes = _random_sizes(seed)
        elif isinstance(split, str):
            raise ValueError(f"bad split {split!r}")
        else:
            self._sizes = _cycle(tuple(split))
        self._tail = bytearray()
        self._next = next(self._sizes) if self._sizes is not None else 0

    def feed(self, data: bytes) -> list[bytes]:
        if self._sizes is None:
            return [data]
        self._tail += data
        out: list[bytes] = []
        while len(self._tail) >= self._next:
            out.append(bytes(self._tail[: self._next]))
            del self._tail[: self._next]
            self._next = next(self._sizes)
        return out

    def flush(self) -> list[bytes]:
        if not self._tail:
            return []
        data = bytes(self._tail)
        self._tail.clear()
        return [data]


def _repeat(n: int) -> Iterator[int]:
    while True:
        yield n


def _cycle(sizes: tuple[int, ...]) -> Iterator[int]:
    while True:
        yield from sizes


def _random_sizes(seed: int) -> Iterator[int]:
    rng = random.Random(seed)
    while True:
        yield rng.randint(1, 64)
