"""A real client through the gateway: opencode (npm ``opencode-ai``), ``opencode run``.

With the settings docs/gateway.md gives: an ``@ai-sdk/openai-compatible`` provider whose
``baseURL`` is ``/openai/v1`` (chat completions), the built-in ``openai`` provider with the
same ``baseURL`` (the Responses API) and the built-in ``anthropic`` provider with
``baseURL`` ``/anthropic/v1``. opencode streams with tools: the model asks to read a file, opencode
reads it and sends the result back, so a tool call's streamed arguments must arrive
whole. ``.ci/run`` installs it and names it in ``LLM_SIDECAR_OPENCODE``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sidecar.fake import FakeProvider, InvalidKey, RateLimited, Reply, Text, ToolUse, fingerprint
from tests.gateway.conftest import Gateway
from tests.gateway.tools import find_tool, requests_to, run_tool, sealed_env, skip_without

OPENCODE = find_tool("LLM_SIDECAR_OPENCODE", "opencode")
pytestmark = skip_without(OPENCODE, "opencode", "npm install opencode-ai", "LLM_SIDECAR_OPENCODE")

SECRET = "the secret word is pelican"  # only in the file: the model's answer needs the tool
ANSWER = "The secret word is pelican."
NOT_SEEN = ("429", "401", "rate limit", "overloaded", "invalid x-api-key", "error")


def config(gateway: Gateway, small_model: str) -> dict[str, Any]:
    """docs/gateway.md's opencode settings, with this gateway's port."""
    return {
        "$schema": "https://opencode.ai/config.json",
        "small_model": small_model,  # the session title: a second request, on its own pool
        "provider": {
            "sidecar-openai": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "OpenAI via llm-sidecar",
                "options": {
                    "baseURL": f"{gateway.url}/openai/v1",
                    "apiKey": "{env:LLM_SIDECAR_GATEWAY_TOKEN}",
                },
                "models": {"gpt-4o": {"name": "gpt-4o"}},
            },
            "anthropic": {
                "options": {
                    "baseURL": f"{gateway.url}/anthropic/v1",
                    "apiKey": "{env:LLM_SIDECAR_GATEWAY_TOKEN}",
                }
            },
            # The built-in provider: OpenAI's Responses API (POST /v1/responses).
            "openai": {
                "options": {
                    "baseURL": f"{gateway.url}/openai/v1",
                    "apiKey": "{env:LLM_SIDECAR_GATEWAY_TOKEN}",
                }
            },
        },
    }


def run_opencode(
    gateway: Gateway, tmp_path: Path, model: str, small_model: str, prompt: str
) -> tuple[str, Path]:
    work = tmp_path / "project"
    work.mkdir()
    notes = work / "notes.txt"
    notes.write_text(SECRET + "\n")
    (work / "opencode.json").write_text(json.dumps(config(gateway, small_model)))
    env = sealed_env(
        tmp_path / "opencode-home",
        {
            "LLM_SIDECAR_GATEWAY_TOKEN": gateway.token,
            # Loopback only: no model catalogue download, no plugin install, no update.
            "OPENCODE_DISABLE_MODELS_FETCH": "1",
            "OPENCODE_PURE": "1",
            "OPENCODE_DISABLE_AUTOUPDATE": "1",
            "OPENCODE_DISABLE_SHARE": "1",
            "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
        },
    )
    assert OPENCODE is not None
    done = run_tool([OPENCODE, "run", "-m", model, prompt], work, env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    output = done.stdout + done.stderr
    assert not any(word in output.lower() for word in NOT_SEEN), output[-2000:]
    return done.stdout, notes


def tool_round_trip(sent: list[dict[str, Any]]) -> tuple[Any, str]:
    """From the last OpenAI-shaped request: the tool call's arguments as opencode got
    them, and the tool result it sent back."""
    messages = sent[-1]["messages"]
    (call,) = next(m for m in messages if m.get("tool_calls"))["tool_calls"]
    result = next(m for m in messages if m["role"] == "tool")
    assert result["tool_call_id"] == call["id"]
    return json.loads(call["function"]["arguments"]), str(result["content"])


def test_opencode_with_an_openai_compatible_provider_rotates_and_its_tool_call_arrives_whole(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str], tmp_path: Path
) -> None:
    busy, revoked, good = make_key("sk-proj-"), make_key("sk-proj-"), make_key("sk-proj-")
    fake.script(busy, [], default=RateLimited(retry_after=300))
    fake.script(revoked, [], default=InvalidKey())
    work = tmp_path / "project"  # run_opencode makes it, notes.txt inside
    reading = Reply(
        [Text("Reading it."), ToolUse("call_1", "read", {"filePath": str(work / "notes.txt")})]
    )
    fake.script(good, [reading], default=Reply(ANSWER))
    gateway.add_keys("openai", [busy, revoked, good])
    # The title goes to Anthropic's pool, so that the two scripts cannot interleave.
    title_busy, title_good = make_key(), make_key()
    fake.script(title_busy, [], default=RateLimited(retry_after=300))
    fake.script(title_good, [], default=Reply("Secret word"))
    gateway.add_keys("anthropic", [title_busy, title_good])

    stdout, notes = run_opencode(
        gateway,
        tmp_path,
        "sidecar-openai/gpt-4o",
        "anthropic/claude-haiku-4-5",
        "What is the secret word in notes.txt?",
    )

    assert ANSWER in stdout
    chats = requests_to(fake, "/v1/chat/completions", [busy, revoked, good])
    assert [r.key for r in chats] == [fingerprint(k) for k in (busy, revoked, good, good)]
    arguments, result = tool_round_trip([r.body for r in chats])
    assert arguments == {"filePath": str(notes)}  # the streamed arguments, whole
    assert SECRET in result  # opencode ran the tool and sent its result back
    first = chats[0]
    assert first.body["stream_options"] == {"include_usage": True}
    agent = first.headers["user-agent"]
    assert agent.startswith("opencode/") and " llm-sidecar/" in agent
    titles = requests_to(fake, "/v1/messages", [title_busy, title_good])
    assert [r.key for r in titles] == [fingerprint(title_busy), fingerprint(title_good)]


def test_opencode_with_the_anthropic_provider_replays_an_overload_after_message_start(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str], tmp_path: Path
) -> None:
    overloaded, good = make_key(), make_key()
    # An overloaded_error right after message_start: held back and replayed.
    fake.script(overloaded, [], default=Reply("never seen", error_after=1))
    work = tmp_path / "project"  # run_opencode makes it, notes.txt inside
    reading = Reply([ToolUse("toolu_1", "read", {"filePath": str(work / "notes.txt")})])
    fake.script(good, [reading], default=Reply(ANSWER))
    gateway.add_keys("anthropic", [overloaded, good])
    title = make_key("sk-proj-")
    fake.script(title, [], default=Reply("Secret word"))
    gateway.add_keys("openai", [title])

    stdout, notes = run_opencode(
        gateway,
        tmp_path,
        "anthropic/claude-sonnet-4-5",
        "sidecar-openai/gpt-4o",
        "What is the secret word in notes.txt?",
    )

    assert ANSWER in stdout and "never seen" not in stdout
    sent = requests_to(fake, "/v1/messages", [overloaded, good])
    assert [r.key for r in sent] == [fingerprint(k) for k in (overloaded, good, good)]
    messages = sent[-1].body["messages"]
    use = next(b for m in messages for b in m["content"] if b.get("type") == "tool_use")
    assert use["input"] == {"filePath": str(notes)}
    result = next(b for m in messages for b in m["content"] if b.get("type") == "tool_result")
    assert result["tool_use_id"] == use["id"] and SECRET in json.dumps(result["content"])


def test_opencode_with_the_built_in_openai_provider_rotates_on_the_responses_api(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str], tmp_path: Path
) -> None:
    busy, good = make_key("sk-proj-"), make_key("sk-proj-")
    fake.script(busy, [], default=RateLimited(retry_after=300))
    work = tmp_path / "project"  # run_opencode makes it, notes.txt inside
    reading = Reply(
        [Text("Reading it."), ToolUse("call_1", "read", {"filePath": str(work / "notes.txt")})]
    )
    fake.script(good, [reading], default=Reply(ANSWER))
    gateway.add_keys("openai", [busy, good])
    title = make_key()
    fake.script(title, [], default=Reply("Secret word"))
    gateway.add_keys("anthropic", [title])

    stdout, notes = run_opencode(
        gateway,
        tmp_path,
        "openai/gpt-4o",
        "anthropic/claude-haiku-4-5",
        "What is the secret word in notes.txt?",
    )

    assert ANSWER in stdout
    sent = requests_to(fake, "/v1/responses", [busy, good])
    assert [r.key for r in sent] == [fingerprint(k) for k in (busy, good, good)]
    items = sent[-1].body["input"]
    (call,) = [i for i in items if i.get("type") == "function_call"]
    assert json.loads(call["arguments"]) == {"filePath": str(notes)}
    (output,) = [i for i in items if i.get("type") == "function_call_output"]
    assert output["call_id"] == call["call_id"] and SECRET in json.dumps(output["output"])
