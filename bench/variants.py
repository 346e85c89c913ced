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
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple

__all__ = ["PATCHES", "LeanEventSource", "apply"]


class ServerSentEvent(NamedTuple):
    event: str
    data: str


class LeanEventSource:
    """``EventSource(response).aiter_sse()``, as httpx-sse's, at a fraction of the cost.

    Lines end at ``\\n``, ``\\r\\n`` or ``\\r`` (a ``\\r`` at the end of a read waits for
    the next byte); an event is dispatched at a blank line when it has data; ``id``,
    ``retry`` and comments are ignored, as the providers' parsers ignore them.
    """

    def __init__(self, response: Any) -> None:
        self._response = response

    async def aiter_sse(self) -> AsyncIterator[ServerSentEvent]:
        event, data = "", []
        pending = b""
        async for chunk in self._response.aiter_bytes():
            buf = pending + chunk if pending else chunk
            if b"\r" in buf:
                if buf.endswith(b"\r"):  # maybe the first half of \r\n
                    pending = buf
                    continue
                buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            end = buf.rfind(b"\n")
            if end < 0:
                pending = buf
                continue
            pending = buf[end + 1 :]
            for line in buf[:end].decode("utf-8", "replace").split("\n"):
                if not line:
                    if data:
                        yield ServerSentEvent(event or "message", "\n".join(data))
                    event, data = "", []
                    continue
                field, _, value = line.partition(":")
                if value[:1] == " ":
                    value = value[1:]
                if field == "data":
                    data.append(value)
                elif field == "event":
                    event = value


def _patch_sse() -> None:
    import sidecar.providers._sse as sse

    sse.EventSource = LeanEventSource  # type: ignore[misc,assignment]


def _patch_builder() -> None:
    from sidecar.providers import _message

    builder = _message.MessageBuilder
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
        if isinstance(delta, _message.TextDelta):
            extend(self, "text", "text", delta.text)
            return
        if isinstance(delta, _message.ThinkingDelta):
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

    original = Engine.stream

    async def stream(
        self: Engine, provider_name: str, request: Any, *, on_status: Any = None, **kwargs: Any
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

        return await original(self, provider_name, request, on_status=deferred, **kwargs)

    Engine.stream = stream  # type: ignore[method-assign]


PATCHES: dict[str, Callable[[], None]] = {
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
    apply(names)
    from sidecar.cli import main as sidecar_main

    return sidecar_main([])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
