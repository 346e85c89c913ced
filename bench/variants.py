"""Prototypes of hot-path changes, measured side by side with the sidecar as it is.

``python -m bench.variants PATCH[,PATCH...]`` serves exactly as ``python -m sidecar``
does, with these patches applied first (their source is the proposal):

- ``sse``: a lean Server-Sent Events parser in place of ``httpx_sse.EventSource``
  (one UTF-8 decode and one split per network read, no per-line generators).
- ``builder``: ``MessageBuilder`` collects text and thinking as lists of pieces joined
  once in ``build()``, instead of ``block[field] += text``, which copies the whole
  text so far on every delta (quadratic in the answer's length).
- ``status``: the engine's ``on_status`` calls are deferred to the loop's next turn and
  deduplicated, so that after a 429 the replay request goes out before the statuses
  (three store files read each) are derived and sent.
- ``writebehind``: after a rate limit the replay does not wait for the store: the
  cooldown's transaction (lock, three reads, an atomic write with two fsyncs) starts on
  the loop's next turn, once the replay request is out, in a worker thread; until it
  lands ``acquire`` skips the cooling credential, choosing from a lock-free read, as
  the written state will.
- ``coalesce``: pygls's ``StdoutWriter`` buffers what is written during one turn of the
  event loop and writes it to stdout once, at the end of the turn: one ``write`` and
  ``flush`` for every stream's deltas (and responses, in order) instead of one per
  stream per turn.
- ``pipe``: stdin is read by the event loop itself (``connect_read_pipe`` and a
  ``StreamReader``) instead of pygls's ``StdinAsyncReader``, which hands every header
  line and every body to a worker thread and back: three thread round trips per
  message, each waiting for a turn of a loop that is busy streaming.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import sys
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple

__all__ = ["PATCHES", "LeanEventSource", "PatchUnavailable", "apply"]


class ServerSentEvent(NamedTuple):
    event: str
    data: str


class LeanEventSource:
    """``EventSource(response).aiter_sse()``, as httpx-sse's, at a fraction of the cost.

    Works on whole events: the bytes up to the last blank line of a read are decoded
    once and split at blank lines; an event of the usual shape (``event: …`` then one
    ``data: …`` line) is cut out with two ``find``; any other shape is parsed line by
    line. Lines may end in ``\\n``, ``\\r\\n`` or ``\\r``; ``id``, ``retry`` and comments
    are ignored, as the providers' parsers ignore them.
    """

    def __init__(self, response: Any) -> None:
        self._response = response

    async def aiter_sse(self) -> AsyncIterator[ServerSentEvent]:
        pending = b""
        async for chunk in self._response.aiter_bytes():
            buf = pending + chunk if pending else chunk
            if buf.endswith(b"\r"):  # maybe the first half of \r\n: wait for more
                pending = buf
                continue
            events, pending = _split_events(buf)
            for event in events:
                yield event
        if pending:  # the body ended: a \r held back was a line end after all
            for event in _split_events(pending)[0]:
                yield event


def _split_events(buf: bytes) -> tuple[list[ServerSentEvent], bytes]:
    """The complete events in ``buf``, and the bytes of the incomplete one after them."""
    if b"\r" in buf:
        buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    end = buf.rfind(b"\n\n")
    if end < 0:
        return [], buf
    events = []
    for block in buf[:end].decode("utf-8", "replace").split("\n\n"):
        if block.startswith("event: "):
            eol = block.find("\n")
            if eol > 0 and block.startswith("data: ", eol + 1) and "\n" not in block[eol + 1 :]:
                events.append(ServerSentEvent(block[7:eol], block[eol + 7 :]))
                continue
        event = _parse_block(block)
        if event is not None:
            events.append(event)
    return events, buf[end + 2 :]


def _parse_block(block: str) -> ServerSentEvent | None:
    """One event's lines, the general way; None when it has no data."""
    event, data = "", []
    for line in block.split("\n"):
        field, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
    return ServerSentEvent(event or "message", "\n".join(data)) if data else None


class PatchUnavailable(RuntimeError):
    """The code a patch replaces has changed: the prototype no longer applies."""


def _require(obj: object, *names: str) -> None:
    missing = [n for n in names if not hasattr(obj, n)]
    if missing:
        raise PatchUnavailable(f"{getattr(obj, '__name__', obj)} has no {', '.join(missing)}")


def _patch_sse() -> None:
    import sidecar.providers._sse as sse

    _require(sse, "EventSource")
    sse.EventSource = LeanEventSource  # type: ignore[attr-defined,assignment]


def _patch_builder() -> None:
    from sidecar.providers import TextDelta, ThinkingDelta, _message

    builder = _message.MessageBuilder
    _require(builder, "_extend", "_start", "add", "build")
    original_build = builder.build

    def pieces(self: Any) -> dict[int, list[str]]:
        found: dict[int, list[str]] | None = self.__dict__.get("_pieces")
        if found is None:
            found = self.__dict__["_pieces"] = {}
        return found

    def extend(self: Any, kind: str, field: str, text: str) -> None:
        block = self._open
        if block is None or block["type"] != kind:
            block = self._start({"type": kind, field: ""})
        pieces(self).setdefault(id(block), [block[field]]).append(text)

    def add(self: Any, delta: Any) -> None:
        if isinstance(delta, TextDelta):
            extend(self, "text", "text", delta.text)
            return
        if isinstance(delta, ThinkingDelta):
            block = self._open
            if block is None or block["type"] != "thinking" or block["signature"]:
                block = self._start({"type": "thinking", "thinking": "", "signature": ""})
            pieces(self).setdefault(id(block), [block["thinking"]]).append(delta.text)
            return
        original_add(self, delta)

    def build(self: Any, stop_reason: str) -> Any:
        for block in self._blocks:
            parts = pieces(self).get(id(block))
            if parts is not None:
                field = "text" if block["type"] == "text" else "thinking"
                block[field] = "".join(parts)
                parts[:] = [block[field]]
        return original_build(self, stop_reason)

    original_add = builder.add
    builder.add = add  # type: ignore[method-assign]
    builder._extend = extend  # type: ignore[method-assign]
    builder.build = build  # type: ignore[method-assign]


def _patch_status() -> None:
    from sidecar.engine import Engine

    if "on_status" not in inspect.signature(Engine.stream).parameters:
        raise PatchUnavailable("Engine.stream takes no on_status")
    original = Engine.stream

    async def stream(
        self: Engine,
        provider_name: str,
        request: Any,
        *args: Any,
        on_status: Any = None,
        **kwargs: Any,
    ) -> Any:
        loop = asyncio.get_running_loop()
        queued: set[str] = set()

        def publish(provider: str) -> None:
            queued.discard(provider)
            if on_status is not None:
                on_status(provider)

        def deferred(provider: str) -> None:
            if provider not in queued:
                queued.add(provider)
                loop.call_soon(publish, provider)

        return await original(self, provider_name, request, *args, on_status=deferred, **kwargs)

    Engine.stream = stream  # type: ignore[method-assign]


def _patch_coalesce() -> None:
    from pygls.io_ import StdoutWriter

    _require(StdoutWriter, "write")
    direct_write = StdoutWriter.write

    def flush(self: Any) -> None:
        pending: list[bytes] = self._pending
        data = b"".join(pending)
        pending.clear()
        direct_write(self, data)

    def write(self: Any, data: bytes) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (shutting down): as before
            direct_write(self, data)
            return
        pending: list[bytes] | None = self.__dict__.get("_pending")
        if pending is None:
            pending = self._pending = []
        if not pending:
            loop.call_soon(flush, self)
        pending.append(data)

    StdoutWriter.write = write  # type: ignore[method-assign]


class PipeReader:
    """pygls's reader interface (``readline``, ``readexactly``) on an asyncio pipe.

    Given a wrapper with a size cap (the server's ``BoundedStdin``: ``_raw``,
    ``_limit``), it reads the wrapped file and keeps the cap: an oversized body is
    skipped as it arrives and pygls gets the wrapper's stand-in for it.
    """

    def __init__(self, stdin: Any, executor: Any = None) -> None:
        self.wrapper = stdin
        self.raw = getattr(stdin, "_raw", stdin)
        self.limit: int | None = getattr(stdin, "_limit", None)
        self._reader: asyncio.StreamReader | None = None

    async def _stream(self) -> asyncio.StreamReader:
        if self._reader is None:
            reader = asyncio.StreamReader()
            loop = asyncio.get_running_loop()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), self.raw)
            self._reader = reader
        return self._reader

    async def readline(self) -> bytes:
        return await (await self._stream()).readline()

    async def readexactly(self, n: int) -> bytes:
        reader = await self._stream()
        if self.limit is not None and n > self.limit:
            left = n
            while left > 0 and (chunk := await reader.read(min(left, 1 << 20))):
                left -= len(chunk)
            stand_in: bytes = type(self.wrapper)(io.BytesIO(), self.limit).read(n)
            return stand_in
        try:
            return await reader.readexactly(n)
        except asyncio.IncompleteReadError as exc:  # end of input: pygls stops on b""
            return exc.partial


def _patch_pipe() -> None:
    import pygls.server

    _require(pygls.server, "StdinAsyncReader")
    pygls.server.StdinAsyncReader = PipeReader  # type: ignore[attr-defined,assignment]


def _patch_writebehind() -> None:
    from sidecar.rotation import rules as rotation
    from sidecar.rotation.classify import FailureClass
    from sidecar.rotation.keypool import KeyPool
    from sidecar.rotation.rules import Action
    from sidecar.rotation.state import RotationState

    _require(KeyPool, "report_failure", "acquire", "pool")
    durable_report, original_acquire = KeyPool.report_failure, KeyPool.acquire

    def cooling(self: KeyPool) -> set[str]:
        found: set[str] | None = self.__dict__.get("_writing_behind")
        if found is None:
            found = self.__dict__["_writing_behind"] = set()
        return found

    def report_failure(self: KeyPool, cred: Any, failure: Any, model: Any = None) -> Action:
        if failure.failure_class is not FailureClass.RATE_LIMIT:
            return durable_report(self, cred, failure, model)
        pending = cooling(self)
        pending.add(cred.state_key)

        def write() -> None:
            try:
                durable_report(self, cred, failure, model)
            finally:
                pending.discard(cred.state_key)

        # A thread of its own: failover now calls this from a worker thread (no running
        # loop there), and the replay must not wait for the write either way.
        threading.Thread(target=write, name="writebehind", daemon=True).start()
        return Action.RETRY  # what record_failure answers for every rate limit

    def acquire(self: KeyPool, provider: str, skip: Any = (), model: Any = None) -> Any:
        pending = cooling(self)
        if not pending:
            return original_acquire(self, provider, skip, model)
        data = self.store.read()
        state = RotationState.from_doc(data.provider_state(provider))  # a copy
        pool = self.pool(provider, data)
        scope = self.scope(provider, model)
        return rotation.choose(provider, pool, state, self.clock(), (*skip, *pending), scope)

    KeyPool.report_failure = report_failure  # type: ignore[method-assign]
    KeyPool.acquire = acquire  # type: ignore[method-assign]


PATCHES: dict[str, Callable[[], None]] = {
    "writebehind": _patch_writebehind,
    "pipe": _patch_pipe,
    "coalesce": _patch_coalesce,
    "sse": _patch_sse,
    "builder": _patch_builder,
    "status": _patch_status,
}


def apply(names: list[str]) -> None:
    for name in names:
        PATCHES[name]()


def main(argv: list[str]) -> int:
    names = [n for n in argv[0].split(",") if n] if argv else []
    unknown = set(names) - set(PATCHES)
    if unknown:
        print(f"unknown patches {sorted(unknown)}; known: {sorted(PATCHES)}", file=sys.stderr)
        return 2
    try:
        apply(names)
    except PatchUnavailable as exc:
        print(f"bench.variants: {exc}", file=sys.stderr)
        return 3
    from sidecar.cli import main as sidecar_main

    return sidecar_main([])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
