"""``llm-sidecar demo``: one real session, start to finish, with nothing to set up.

It starts the built-in provider stand-in (``sidecar.fake``) with three keys
scripted so that one request shows everything: key 1 is rate limited, key 2
is rejected as invalid and evicted, key 3 streams a reply with thinking and a
tool call. Then it spawns the real sidecar over stdio in a temporary home and
drives it as an editor would, printing what the editor sees. No network, no
keys, no config; no real credential file is touched.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

from sidecar.events import Restart
from sidecar.fake import (
    FakeProvider,
    InvalidKey,
    RateLimited,
    Reply,
    Text,
    Thinking,
    ToolUse,
    Usage,
)
from sidecar.fake.editor_client import EditorClient
from sidecar.providers import TextDelta, ThinkingDelta, ToolInputDelta, ToolUseStart, ToolUseStop
from sidecar.rpc.wire import event_from_wire

__all__ = ["run_demo"]

DEMO_KEYS = (
    "sk-ant-api03-demo-rate-limited-000000000001",
    "sk-ant-api03-demo-revoked-0000000000000002",
    "sk-ant-api03-demo-healthy-0000000000000003",
)
ANSWER = (
    "Rotation kept this answer flowing: key 1 was rate limited and is cooling down, "
    "key 2 was rejected and left the pool, and key 3 is streaming these words to you "
    "one small chunk at a time. Let me look at the file you mentioned."
)


class Screen:
    """What the demo prints: plain lines, with colour on a terminal."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.color = out.isatty() and "NO_COLOR" not in os.environ
        self.mid_line = False

    def _c(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def line(self, text: str = "") -> None:
        if self.mid_line:
            self.out.write("\n")
            self.mid_line = False
        self.out.write(text + "\n")
        self.out.flush()

    def end_line(self) -> None:
        if self.mid_line:
            self.out.write("\n")
            self.mid_line = False

    def step(self, text: str) -> None:
        self.line(self._c("1", f"▸ {text}"))

    def status(self, params: dict[str, Any]) -> None:
        note = f"  ({params['message']})" if params.get("message") else ""
        self.line(f"  status bar: {self._c('33', params['text'])}{self._c('2', note)}")

    def stream(self, text: str, style: str = "") -> None:
        if not self.mid_line:
            self.out.write("  ")
        self.out.write(self._c(style, text) if style else text)
        self.out.flush()
        self.mid_line = True


def _script(fake: FakeProvider) -> None:
    limited, revoked, healthy = DEMO_KEYS
    fake.script(limited, [RateLimited(retry_after=30)])
    fake.script(revoked, [InvalidKey()])
    fake.script(
        healthy,
        [],
        default=Reply(
            [
                Thinking("The user wants to see rotation; answer, then read the file.", "sig-demo"),
                Text(ANSWER),
                ToolUse("toolu_demo", "read_file", {"path": "README.md"}),
            ],
            stop_reason="tool_use",
            usage=Usage(input=42, output=61, cache_read=1200, cache_write=0),
            chunk=6,
            interval=0.015,
        ),
    )


async def _session(fake_url: str, home: Path, screen: Screen) -> int:
    env = {k: v for k, v in os.environ.items() if "_API_KEY" not in k and not k.endswith("_TOKEN")}
    env.update(LLM_SIDECAR_HOME=str(home), ANTHROPIC_BASE_URL=fake_url)
    section = {"now": ""}  # what the stream is printing: thinking, answer or a tool call
    answer: list[str] = []  # the answer's text from the deltas (the result omits it)

    def begin(name: str, label: str) -> None:
        if section["now"] != name:
            section["now"] = name
            screen.end_line()
            screen.stream(label, "2")

    def on_delta(d: dict[str, Any]) -> None:
        # Read back into the typed events the engine produced (sidecar.events), as
        # every face consumes them.
        match event_from_wire(d):
            case ThinkingDelta(text=text):
                begin("thinking", "thinking: ")
                screen.stream(text, "2;3")
            case TextDelta(text=text):
                begin("text", "answer:   ")
                screen.stream(text)
                answer.append(text)
            case ToolUseStart(id=id, name=name):
                begin(id, "tool call: ")
                screen.stream(f"{name}(", "36")
            case ToolInputDelta(json=fragment):
                screen.stream(fragment, "36")
            case ToolUseStop():
                screen.stream(")", "36")
                screen.end_line()
            case Restart():
                section["now"] = ""
                answer.clear()
                screen.line("  [restart: the partial answer above is void]")

    started = time.perf_counter()
    async with EditorClient(env, on_status=screen.status, on_delta=on_delta) as editor:
        screen.step(
            f"sidecar started over stdio and initialized in {time.perf_counter() - started:.2f} s"
        )
        screen.step("adding three keys to the anthropic pool (sidecar/keyAdd)")
        for key in DEMO_KEYS:
            await editor.request("sidecar/keyAdd", {"provider": "anthropic", "key": key})
        await asyncio.sleep(0.05)
        screen.step("asking a question (sidecar/stream); key 1 will say 429, key 2 401")
        result = await editor.request(
            "sidecar/stream",
            {
                "provider": "anthropic",
                "model": "claude-sonnet-4-5",
                "maxTokens": 512,
                "streamId": "demo",
                "thinking": {"budgetTokens": 256},
                "messages": [{"role": "user", "content": "Show me key rotation at work."}],
                "omitContent": True,  # the answer was printed from the deltas
            },
        )
        await asyncio.sleep(0.05)
        usage, cost = result["usage"], result["cost"]
        screen.step(
            f"done: stop reason {result['stopReason']}, {result['attempts']} attempts, "
            f"answered by {result['credential']['fingerprint']}"
        )
        screen.line(
            f"  usage: {usage['inputTokens']} in, {usage['outputTokens']} out, "
            f"{usage['cacheReadTokens']} cache read, {usage['cacheWriteTokens']} cache write; "
            f"cost ${cost['total']:.6f} (prices as of {cost['pricesAsOf']})"
        )
        status = await editor.request("sidecar/status", {"provider": "anthropic"})
        screen.step("the pool afterwards (sidecar/status)")
        for cred in status["providers"][0]["credentials"]:
            extra = f" until {cred['cooldownUntil']}" if cred.get("cooldownUntil") else ""
            # An API key's 429 rests it for that model (class) only: other models still use it.
            for rest in cred.get("modelCooldowns", []):
                extra += f", {rest['model']} cooling down until {rest['until']}"
            for window in cred.get("windows", []):
                if window.get("percentLeft") is not None:
                    extra += f", {window.get('model') or 'account'} {window['name']} "
                    extra += f"{window['percentLeft']}% left"
            screen.line(f"  {cred['fingerprint']:<26} {cred['state']}{extra}")
        pooled = json.loads((home / "pool.json").read_text())["pools"]["anthropic"]
        evicted = not any(e.get("key") == DEMO_KEYS[1] for e in pooled)
        screen.line(f"  the rejected key is {'gone from' if evicted else 'STILL IN'} pool.json")
        ok = result["attempts"] == 3 and evicted and "Rotation kept" in "".join(answer)
    return 0 if ok else 1


def run_demo(out: TextIO = sys.stdout) -> int:
    screen = Screen(out)
    screen.line("llm-sidecar demo: a real session against the built-in provider stand-in")
    screen.line("(loopback only, a temporary home; your own credentials are not touched)")
    with tempfile.TemporaryDirectory(prefix="llm-sidecar-demo-") as tmp, FakeProvider() as fake:
        _script(fake)
        screen.step(f"provider stand-in listening on {fake.url}")
        code = asyncio.run(_session(fake.url, Path(tmp) / "home", screen))
    screen.line("demo " + ("succeeded" if code == 0 else "FAILED"))
    return code
