"""Whatever the HTTP chunking, even inside a multi-byte UTF-8 character, the deltas
concatenate to exactly what was sent, for both wire flavours."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.providers import (
    Delta,
    Provider,
    TextDelta,
    ToolInputDelta,
    get_provider,
)
from tests.providers.support import (
    DONE,
    anthropic_events,
    collect,
    cred,
    end_of,
    openai_chunk,
    request,
    streaming,
)

# Multi-byte characters on purpose: 2-, 3- and 4-byte UTF-8, and newlines, which SSE
# must keep inside JSON strings.
TEXT = st.text(
    alphabet=st.sampled_from(list('ab \n"\\é中😀{}:,')) | st.characters(codec="utf-8"),
    min_size=1,
    max_size=40,
)
TOOL_INPUT = st.dictionaries(
    st.text(min_size=1, max_size=5), st.text(max_size=10) | st.integers(), max_size=3
)
KEY = "sk-ant-api03-property-test-not-a-secret"


def _pieces(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c for c in cuts if 0 < c < len(text)})
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def _run(provider: Provider, body: bytes, cuts: list[int]) -> list[Delta]:
    async def go() -> list[Delta]:
        async with streaming(body, cuts=cuts) as client:
            return await collect(provider, client, request(), cred(KEY))

    return asyncio.run(go())


def _check(deltas: list[Delta], text: str, tool_json: str, tool_input: dict[str, Any]) -> None:
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == text
    assert "".join(d.json for d in deltas if isinstance(d, ToolInputDelta)) == tool_json
    message = end_of(deltas).message
    assert message.content == [
        {"type": "text", "text": text},
        {"type": "tool_use", "id": "t1", "name": "tool", "input": tool_input},
    ]


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(text=TEXT, tool_input=TOOL_INPUT, data=st.data())
def test_anthropic_any_split(text: str, tool_input: dict[str, Any], data: st.DataObject) -> None:
    tool_json = json.dumps(tool_input, ensure_ascii=False)
    text_cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=5))
    json_cuts = data.draw(st.lists(st.integers(0, len(tool_json)), max_size=5))
    body = anthropic_events(
        [
            {"type": "text", "pieces": _pieces(text, text_cuts)},
            {"type": "tool_use", "id": "t1", "name": "tool", "json": _pieces(tool_json, json_cuts)},
        ],
        stop_reason="tool_use",
    )
    byte_cuts = data.draw(st.lists(st.integers(1, len(body) - 1), max_size=40))
    _check(_run(get_provider("anthropic", {}), body, byte_cuts), text, tool_json, tool_input)


@SETTINGS
@given(text=TEXT, tool_input=TOOL_INPUT, data=st.data())
def test_openai_any_split(text: str, tool_input: dict[str, Any], data: st.DataObject) -> None:
    tool_json = json.dumps(tool_input, ensure_ascii=False)
    text_cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=5))
    json_cuts = data.draw(st.lists(st.integers(0, len(tool_json)), max_size=5))
    chunks = [openai_chunk({"content": piece}) for piece in _pieces(text, text_cuts)]
    chunks.append(
        openai_chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "t1", "function": {"name": "tool", "arguments": ""}}
                ]
            }
        )
    )
    chunks += [
        openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        for piece in _pieces(tool_json, json_cuts)
    ]
    chunks += [openai_chunk({}, "tool_calls"), DONE]
    body = b"".join(chunks)
    byte_cuts = data.draw(st.lists(st.integers(1, len(body) - 1), max_size=40))
    _check(_run(get_provider("openai", {}), body, byte_cuts), text, tool_json, tool_input)
