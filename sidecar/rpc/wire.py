"""Where a stream's typed events become ``sidecar/streamDelta`` frames.

The hot path of every stream (docs/benchmarks.md): each event becomes its
camelCase wire dict once; adjacent deltas of one kind (and one tool call) that
arrive within one turn of the event loop are merged, so a burst of tokens read
in one network chunk becomes one notification; and a batch is written with one
``json.dumps`` per frame and one write, bypassing pygls's attrs round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sidecar.events import Fallback, Finished, Restart, StreamEvent
from sidecar.providers._types import (
    SignatureDelta,
    TextDelta,
    ThinkingDelta,
    ToolInputDelta,
    ToolUseStart,
    ToolUseStop,
    Usage,
    UsageDelta,
)
from sidecar.rpc import stdio
from sidecar.rpc.framing import frame

__all__ = [
    "WireSink",
    "delta_frames",
    "event_from_wire",
    "event_to_wire",
    "sender",
    "usage_to_wire",
]

WireDelta = dict[str, Any]


def usage_to_wire(usage: Usage) -> dict[str, int]:
    return {
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "cacheReadTokens": usage.cache_read_tokens,
        "cacheWriteTokens": usage.cache_write_tokens,
    }


def event_to_wire(event: StreamEvent) -> WireDelta | None:
    """The ``sidecar/streamDelta`` fields of one event (without ``streamId``);
    None for :class:`Finished`, which is the request's result, not a delta."""
    match event:
        case TextDelta(text=text):
            return {"kind": "text", "text": text}
        case ThinkingDelta(text=text):
            return {"kind": "thinking", "text": text}
        case SignatureDelta(signature=signature):
            return {"kind": "signature", "signature": signature}
        case ToolUseStart(id=id, name=name):
            return {"kind": "toolUseStart", "id": id, "name": name}
        case ToolInputDelta(id=id, json=fragment):
            return {"kind": "toolInputDelta", "id": id, "json": fragment}
        case ToolUseStop(id=id):
            return {"kind": "toolUseStop", "id": id}
        case UsageDelta(usage=usage):
            return {"kind": "usage", "usage": usage_to_wire(usage)}
        case Restart(attempt=attempt, reason=reason):
            return {"kind": "restart", "attempt": attempt, "reason": reason}
        case Fallback(provider=provider, model=model, reason=reason):
            return {"kind": "fallback", "provider": provider, "model": model, "reason": reason}
        case Finished():
            return None
    raise TypeError(f"not a stream event: {type(event).__name__}")


def event_from_wire(d: WireDelta) -> StreamEvent | None:
    """The typed event of one ``sidecar/streamDelta``'s params, as a client reads it
    back (the demo); None for a kind this version does not know."""
    match d.get("kind"):
        case "text":
            return TextDelta(d["text"])
        case "thinking":
            return ThinkingDelta(d["text"])
        case "signature":
            return SignatureDelta(d["signature"])
        case "toolUseStart":
            return ToolUseStart(d["id"], d["name"])
        case "toolInputDelta":
            return ToolInputDelta(d["id"], d["json"])
        case "toolUseStop":
            return ToolUseStop(d["id"])
        case "usage":
            u = d["usage"]
            return UsageDelta(
                Usage(
                    u["inputTokens"], u["outputTokens"], u["cacheReadTokens"], u["cacheWriteTokens"]
                )
            )
        case "restart":
            return Restart(d["attempt"], d["reason"])
        case "fallback":
            # The wire leaves out what was asked for: the client knows its own request.
            return Fallback(d["provider"], d["model"], d["reason"], "", "")
    return None


# The field that concatenates when two adjacent deltas of a kind are merged.
_MERGEABLE = {
    "text": "text",
    "thinking": "text",
    "signature": "signature",
    "toolInputDelta": "json",
}


def delta_frames(deltas: list[WireDelta]) -> bytes:
    """One LSP frame per ``sidecar/streamDelta``, each body one ``json.dumps``."""
    return "".join(
        frame({"jsonrpc": "2.0", "method": "sidecar/streamDelta", "params": delta})
        for delta in deltas
    ).encode("ascii")


def sender(protocol: Any) -> Callable[[list[WireDelta]], None]:
    """Writes batches of wire deltas to ``protocol``'s writer (pygls's), one write each."""

    def send(deltas: list[WireDelta]) -> None:
        writer = protocol.writer
        if writer is not None:
            writer.write(delta_frames(deltas))

    return send


class WireSink:
    """One stream's events as ``sidecar/streamDelta`` batches, sent once per loop turn.

    ``send`` gets each batch of wire deltas (each with ``streamId``): the server's
    is :func:`sender`. Call :meth:`flush` before the request's
    answer goes out, so that no delta follows it.
    """

    def __init__(self, stream_id: str, send: Callable[[list[WireDelta]], None]) -> None:
        self.stream_id = stream_id
        self._send = send
        self._pending: list[WireDelta] = []
        self._scheduled: asyncio.Handle | None = None
        self._started = False  # the first delta went out

    def event(self, event: StreamEvent) -> None:
        wire = event_to_wire(event)
        if wire is None:
            self.flush()
            return
        pending = self._pending
        last = pending[-1] if pending else None
        field = _MERGEABLE.get(wire["kind"])
        if (
            last is not None
            and field is not None
            and last["kind"] == wire["kind"]
            and last.get("id") == wire.get("id")
        ):
            last[field] += wire[field]
        else:
            pending.append({"streamId": self.stream_id, **wire})
        if not self._started:
            # The user waits for the first delta: it goes now, not after the rest of
            # the network read it came in has been parsed.
            self._started = True
            self.flush()
        elif self._scheduled is None:
            self._scheduled = asyncio.get_running_loop().call_soon(self.flush)

    async def ready(self) -> None:
        # A client that does not read pauses its streams here (see rpc.stdio.Outbox).
        await stdio.output_ready()

    def flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        if self._pending:
            pending, self._pending = self._pending, []
            self._send(pending)
