"""Deltas through the sidecar add up to exactly what the provider sent, however the
bytes were cut: one stream for every single cut position of the SSE body, plus
random multi-cut splits. Multi-byte UTF-8 (accents, CJK, emoji) is cut too."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from sidecar.fake import FakeProvider, Reply, Text, Thinking, ToolUse
from tests.conftest import answer_text
from tests.server.conftest import SidecarClient, start_sidecar, stop_sidecar

TEXT = "Héllo, 你好 👋🏽 “quoted”\n"
THINKING = "考える 🤔"
TOOL_INPUT = {"path": "ü.md", "n": [1, 2]}


def reply(split: Any, seed: int = 0) -> Reply:
    return Reply(
        [Thinking(THINKING, "sig-ü"), Text(TEXT), ToolUse("toolu_1", "read", TOOL_INPUT)],
        stop_reason="tool_use",
        chunk=4,
        split=split,
        seed=seed,
    )


def body_length(fake: FakeProvider, key: str) -> int:
    """The SSE body's size in bytes, measured once by a plain HTTP client."""
    fake.script(key, [reply(None)])
    response = httpx.post(
        f"{fake.url}/v1/messages",
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        json={
            "model": "m",
            "max_tokens": 10,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
    )
    return len(response.content)


def collected(client: SidecarClient, stream_id: str) -> dict[str, str]:
    out = {"text": "", "thinking": "", "json": "", "signature": ""}
    for d in client.deltas:
        if d["streamId"] == stream_id:
            if d["kind"] in ("text", "thinking"):
                out[d["kind"]] += d["text"]
            elif d["kind"] == "toolInputDelta":
                out["json"] += d["json"]
            elif d["kind"] == "signature":
                out["signature"] += d["signature"]
    return out


async def check(client: SidecarClient, stream_id: str) -> None:
    result = await client.request(
        "sidecar/stream",
        {
            "provider": "anthropic",
            "model": "claude-haiku-4-5",
            "maxTokens": 64,
            "streamId": stream_id,
            "messages": [{"role": "user", "content": "split me"}],
        },
    )
    got = collected(client, stream_id)
    assert got["text"] == TEXT == answer_text(result), stream_id
    assert got["thinking"] == THINKING and got["signature"] == "sig-ü", stream_id
    assert json.loads(got["json"]) == TOOL_INPUT == result["content"][2]["input"], stream_id


async def test_every_single_cut_and_random_splits(home: Path, make_key: Callable[..., str]) -> None:
    key = make_key()
    with FakeProvider() as fake:
        size = body_length(fake, key)
        # One request per cut position (a list of sizes cuts once, then never again),
        # then fifty random splits of 1..64-byte pieces.
        steps = [reply([cut, 1 << 30]) for cut in range(1, size)]
        steps += [reply("random", seed) for seed in range(50)]
        fake.script(key, steps)
        client = await start_sidecar(home, env={"ANTHROPIC_BASE_URL": fake.url})
        try:
            await client.request("sidecar/keyAdd", {"provider": "anthropic", "key": key})
            ids = [f"cut-{i}" for i in range(len(steps))]
            for start in range(0, len(ids), 16):  # sixteen streams at a time
                batch = ids[start : start + 16]
                await asyncio.gather(*(check(client, sid) for sid in batch))
        finally:
            await stop_sidecar(client)
    assert size > 300  # the body really had many places to cut
