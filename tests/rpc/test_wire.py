"""Typed stream events → ``sidecar/streamDelta`` dicts, merged per loop turn, framed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sidecar.events import Fallback, Finished, Restart
from sidecar.providers import (
    SignatureDelta,
    TextDelta,
    ThinkingDelta,
    ToolInputDelta,
    ToolUseStart,
    ToolUseStop,
    Usage,
    UsageDelta,
)
from sidecar.rpc.wire import WireSink, delta_frames, event_from_wire, event_to_wire


def test_each_event_has_its_camel_case_wire_form() -> None:
    assert event_to_wire(TextDelta("a")) == {"kind": "text", "text": "a"}
    assert event_to_wire(ThinkingDelta("t")) == {"kind": "thinking", "text": "t"}
    assert event_to_wire(SignatureDelta("s")) == {"kind": "signature", "signature": "s"}
    assert event_to_wire(ToolUseStart("t1", "read")) == {
        "kind": "toolUseStart",
        "id": "t1",
        "name": "read",
    }
    assert event_to_wire(ToolInputDelta("t1", '{"a"')) == {
        "kind": "toolInputDelta",
        "id": "t1",
        "json": '{"a"',
    }
    assert event_to_wire(ToolUseStop("t1")) == {"kind": "toolUseStop", "id": "t1"}
    assert event_to_wire(UsageDelta(Usage(1, 2, 3, 4))) == {
        "kind": "usage",
        "usage": {"inputTokens": 1, "outputTokens": 2, "cacheReadTokens": 3, "cacheWriteTokens": 4},
    }
    assert event_to_wire(Restart(2, "overloaded")) == {
        "kind": "restart",
        "attempt": 2,
        "reason": "overloaded",
    }
    # What was asked for stays off the wire: the client knows its own request.
    fallback = Fallback("openrouter", "a/b", "all rate limited", "anthropic", "claude-x")
    assert event_to_wire(fallback) == {
        "kind": "fallback",
        "provider": "openrouter",
        "model": "a/b",
        "reason": "all rate limited",
    }
    assert event_from_wire(event_to_wire(fallback) or {}) == Fallback(
        "openrouter", "a/b", "all rate limited", "", ""
    )
    assert event_to_wire(Finished(outcome=None)) is None  # type: ignore[arg-type]


async def test_the_first_delta_goes_at_once_then_neighbours_merge_within_a_loop_turn() -> None:
    batches: list[list[dict[str, Any]]] = []
    sink = WireSink("s1", batches.append)
    # The user waits for the first delta: it does not wait for the rest of its read.
    sink.event(TextDelta("0"))
    assert batches == [[{"streamId": "s1", "kind": "text", "text": "0"}]]
    batches.clear()
    for event in (
        TextDelta("a"),
        TextDelta("b"),
        ThinkingDelta("c"),
        ToolUseStart("t1", "read"),
        ToolInputDelta("t1", "{"),
        ToolInputDelta("t1", "}"),
        ToolInputDelta("t2", "["),  # another tool call: not merged with t1's
        TextDelta("d"),
    ):
        sink.event(event)
    assert batches == []  # nothing is sent before the loop's next turn
    await asyncio.sleep(0)
    assert batches == [
        [
            {"streamId": "s1", "kind": "text", "text": "ab"},
            {"streamId": "s1", "kind": "thinking", "text": "c"},
            {"streamId": "s1", "kind": "toolUseStart", "id": "t1", "name": "read"},
            {"streamId": "s1", "kind": "toolInputDelta", "id": "t1", "json": "{}"},
            {"streamId": "s1", "kind": "toolInputDelta", "id": "t2", "json": "["},
            {"streamId": "s1", "kind": "text", "text": "d"},
        ]
    ]
    sink.event(TextDelta("e"))
    await asyncio.sleep(0)
    assert batches[1] == [{"streamId": "s1", "kind": "text", "text": "e"}]  # a new turn


async def test_finished_and_flush_send_what_is_pending_at_once() -> None:
    batches: list[list[dict[str, Any]]] = []
    sink = WireSink("s2", batches.append)
    sink.event(TextDelta("w"))  # the first, sent at once
    batches.clear()
    sink.event(TextDelta("x"))
    sink.event(Finished(outcome=None))  # type: ignore[arg-type]
    assert batches == [[{"streamId": "s2", "kind": "text", "text": "x"}]]
    sink.flush()  # nothing left: nothing sent
    await asyncio.sleep(0)
    assert len(batches) == 1


def test_one_frame_per_delta_with_its_byte_length() -> None:
    deltas = [{"streamId": "s", "kind": "text", "text": "héllo 🔑"}, {"streamId": "s", "kind": "x"}]
    data = delta_frames(deltas)
    bodies = []
    rest = data
    while rest:
        head, _, rest = rest.partition(b"\r\n\r\n")
        length = int(head.split(b":")[1])
        body, rest = rest[:length], rest[length:]
        bodies.append(json.loads(body))
    assert [b["params"] for b in bodies] == deltas
    assert all(
        b == {"jsonrpc": "2.0", "method": "sidecar/streamDelta", "params": b["params"]}
        for b in bodies
    )


def test_a_client_reads_the_wire_back_into_the_same_events() -> None:
    events = [
        TextDelta("a"),
        ThinkingDelta("t"),
        SignatureDelta("s"),
        ToolUseStart("t1", "read"),
        ToolInputDelta("t1", "{}"),
        ToolUseStop("t1"),
        UsageDelta(Usage(1, 2, 3, 4)),
        Restart(2, "overloaded"),
    ]
    assert [event_from_wire(event_to_wire(e) or {}) for e in events] == events
    assert event_from_wire({"kind": "somethingNew"}) is None  # a newer server: ignored
