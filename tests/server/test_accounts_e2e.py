"""Rotation and accounts as an editor meets them, over stdio against the fake provider.

- When every credential fails, the error is the last attempt's and counts the
  credentials really tried.
- A credential refused for its scope shows so, with the advice, while another answers.
- Adding a key never moves the credential in use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from pygls.exceptions import JsonRpcException

from sidecar.fake import FakeProvider, InvalidKey, RateLimited, Reply, ScopeRefused, Text
from tests.conftest import leaked
from tests.server.conftest import SidecarClient, start_sidecar, stop_sidecar

ANSWER = Reply([Text("The answer is 42.")])


def ask() -> dict[str, object]:
    return {
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "maxTokens": 64,
        "messages": [{"role": "user", "content": "What is the answer?"}],
    }


async def pool_of(editor: SidecarClient, keys: list[str]) -> None:
    for key in keys:
        await editor.request("sidecar/keyAdd", {"provider": "anthropic", "key": key})


# -- item 13: the last attempt's error, counting what was tried ---------------------------


async def test_a_429_then_a_401_returns_the_401_and_counts_both_keys(
    editor: SidecarClient, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    busy, revoked = make_key(), make_key()
    fake.script(busy, [], default=RateLimited(retry_after=300))
    fake.script(revoked, [], default=InvalidKey("invalid x-api-key"))
    await pool_of(editor, [busy, revoked])
    with pytest.raises(JsonRpcException) as err:
        await editor.request("sidecar/stream", ask())
    assert err.value.code == -32003  # the last attempt was refused as invalid
    assert "invalid x-api-key" in err.value.message
    assert "2 anthropic credentials" in err.value.message
    assert "all 1" not in err.value.message
    assert err.value.data["keys"] == 2 and err.value.data["status"] == 401
    assert len(fake.requests) == 2


async def test_a_401_then_a_429_is_a_rate_limit_that_counts_both_keys(
    editor: SidecarClient, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    revoked, busy = make_key(), make_key()
    fake.script(revoked, [], default=InvalidKey("invalid x-api-key"))
    fake.script(busy, [], default=RateLimited(retry_after=300))
    await pool_of(editor, [revoked, busy])
    with pytest.raises(JsonRpcException) as err:
        await editor.request("sidecar/stream", ask())
    assert err.value.code == -32002  # the last attempt was rate limited
    assert "2 anthropic credentials" in err.value.message
    assert "all 1" not in err.value.message
    assert err.value.data["keys"] == 2 and err.value.data["retryAt"].endswith("Z")
    assert len(fake.requests) == 2


# -- item 14: a scope refusal shows, with the advice, while another key answers -----------


async def test_a_scope_refusal_shows_in_status_and_tooltip_while_another_key_answers(
    editor: SidecarClient, fake: FakeProvider, make_key: Callable[..., str], home: Path
) -> None:
    token, key = make_key("sk-ant-oat01-"), make_key()
    fake.script(token, [], default=ScopeRefused())
    fake.script(key, [], default=ANSWER)
    await pool_of(editor, [token, key])
    before = len(editor.statuses)

    result = await editor.request("sidecar/stream", ask())
    assert result["credential"]["fingerprint"].endswith(key[-4:])

    status = await editor.request("sidecar/status", {"provider": "anthropic"})
    [anthropic] = status["providers"]
    refused = next(c for c in anthropic["credentials"] if c["fingerprint"].endswith(token[-4:]))
    assert refused["state"] == "refused"
    assert "only authorized for use with Claude Code" in refused["message"]
    assert "use an API key" in refused["message"]
    assert "use an API key" in anthropic["message"] and anthropic["kind"] == "Warning"
    # The status bar's notification carries it too, after the success.
    pushed = await editor.wait_status(
        lambda s: "use an API key" in (s.get("message") or ""), after=before
    )
    assert pushed["provider"] == "anthropic"

    # And so does the terminal.
    env = {k: v for k, v in os.environ.items() if "_API_KEY" not in k}
    cli = subprocess.run(
        [sys.executable, "-m", "sidecar", "status"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "LLM_SIDECAR_HOME": str(home)},
    )
    assert not leaked(cli.stdout + cli.stderr)
    line = next(ln for ln in cli.stdout.splitlines() if token[-4:] in ln)
    assert "refused" in line and "use an API key" in line


# -- item 15: adding a key keeps the one in use ------------------------------------------------


async def test_adding_a_key_keeps_the_credential_in_use_and_its_number(
    home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    in_use, added = make_key(), make_key()
    fake.script(in_use, [], default=ANSWER)
    fake.script(added, [], default=ANSWER)
    editor = await start_sidecar(
        home, env={"ANTHROPIC_BASE_URL": fake.url, "ANTHROPIC_API_KEY": in_use}
    )
    try:
        first = await editor.request("sidecar/stream", ask())
        assert first["credential"]["id"] == "env:ANTHROPIC_API_KEY"

        result = await editor.request("sidecar/keyAdd", {"provider": "anthropic", "key": added})
        status = result["status"]
        assert status["text"] == "🔑 1/2" and status["index"] == 1
        assert status["credentials"][0]["id"] == "env:ANTHROPIC_API_KEY"
        assert status["credentials"][1]["fingerprint"].endswith(added[-4:])

        after = await editor.request("sidecar/stream", ask())
        assert after["credential"]["id"] == "env:ANTHROPIC_API_KEY"

        # The key in use stored as well: shown once, under the id it is in use by.
        same = await editor.request("sidecar/keyAdd", {"provider": "anthropic", "key": in_use})
        assert same["credential"]["id"] == "env:ANTHROPIC_API_KEY"
        assert same["status"]["text"] == "🔑 1/2"

        # A login pasted later goes after both.
        token = make_key("sk-ant-oat01-")
        fake.script(token, [], default=ANSWER)
        pasted = subprocess.run(
            [sys.executable, "-m", "sidecar", "auth", "paste-token", "-p", "anthropic"],
            input=token,
            capture_output=True,
            text=True,
            timeout=60,
            env={
                **{k: v for k, v in os.environ.items() if "_API_KEY" not in k},
                "LLM_SIDECAR_HOME": str(home),
                "ANTHROPIC_API_KEY": in_use,
            },
        )
        assert pasted.returncode == 0, pasted.stderr
        status = (await editor.request("sidecar/status", {"provider": "anthropic"}))["providers"][0]
        assert status["text"] == "🔑 1/3"
        assert status["credentials"][0]["id"] == "env:ANTHROPIC_API_KEY"
        assert status["credentials"][2]["id"] == "anthropic:default"
    finally:
        await stop_sidecar(editor)
    assert json.loads((home / "credentials.json").read_text())["order"]["anthropic"][0] == (
        "env:ANTHROPIC_API_KEY"
    )
