"""MessageBuilder: the one place deltas become content blocks."""

from __future__ import annotations

import subprocess
import sys

from sidecar.providers import (
    Delta,
    MessageBuilder,
    MessageEnd,
    SignatureDelta,
    TextDelta,
    ThinkingDelta,
    ToolInputDelta,
    ToolUseStart,
    ToolUseStop,
    Usage,
    UsageDelta,
    parse_tool_input,
)


def test_blocks_and_boundaries() -> None:
    b = MessageBuilder()
    deltas: list[Delta] = [
        ThinkingDelta("a"),
        ThinkingDelta("b"),
        SignatureDelta("s1"),
        ThinkingDelta("c"),  # after a signature: a new thinking block
        SignatureDelta("s2"),
        TextDelta("one"),
        TextDelta(" two"),
        UsageDelta(Usage(1, 2, 3, 4)),
    ]
    for delta in deltas:
        b.add(delta)
    b.end_block()
    b.add(TextDelta("three"))  # after end_block: a new text block
    b.redacted_thinking("opaque")
    message = b.build("end_turn")
    assert message.content == [
        {"type": "thinking", "thinking": "ab", "signature": "s1"},
        {"type": "thinking", "thinking": "c", "signature": "s2"},
        {"type": "text", "text": "one two"},
        {"type": "text", "text": "three"},
        {"type": "redacted_thinking", "data": "opaque"},
    ]
    assert message.text == "one twothree"
    assert message.usage == Usage(1, 2, 3, 4)


def test_interleaved_tools_and_unknown_ids() -> None:
    b = MessageBuilder()
    b.add(ToolUseStart("a", "read"))
    b.add(ToolUseStart("b", "grep"))
    b.add(ToolInputDelta("a", '{"x":'))
    b.add(ToolInputDelta("b", '{"y": 2}'))
    b.add(ToolInputDelta("ghost", '{"z": 3}'))  # never started: dropped, no crash
    b.add(ToolInputDelta("a", " 1}"))
    b.add(ToolUseStop("a"))
    b.add(TextDelta("after"))
    b.add(MessageEnd(b.build("x")))  # ignored
    assert b.build("tool_use").content == [
        {"type": "tool_use", "id": "a", "name": "read", "input": {"x": 1}},
        {"type": "tool_use", "id": "b", "name": "grep", "input": {"y": 2}},
        {"type": "text", "text": "after"},
    ]


def test_build_does_not_share_state() -> None:
    b = MessageBuilder()
    b.add(TextDelta("x"))
    first = b.build("end_turn")
    b.add(TextDelta("y"))
    assert first.content == [{"type": "text", "text": "x"}]
    assert b.build("end_turn").content == [{"type": "text", "text": "xy"}]


def test_parse_tool_input() -> None:
    assert parse_tool_input("") == {}
    assert parse_tool_input("  ") == {}
    assert parse_tool_input('{"a": [1]}') == {"a": [1]}
    assert parse_tool_input('{"a": ') == {"_raw": '{"a": '}
    assert parse_tool_input("[1, 2]") == {"_raw": "[1, 2]"}
    assert parse_tool_input("[" * 100_000) == {"_raw": "[" * 100_000}


def test_import_is_light() -> None:
    code = (
        "import sys, sidecar.providers, sidecar.pricing; "
        "print('httpx' in sys.modules, 'httpx_sse' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
