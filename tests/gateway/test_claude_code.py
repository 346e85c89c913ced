"""A real client through the gateway: Claude Code (npm ``@anthropic-ai/claude-code``).

Run non-interactively (``claude -p``) with only ``ANTHROPIC_BASE_URL`` and the gateway
token set, against the fake behind the gateway, no network but loopback. Skipped, with
the reason, where Claude Code is not installed: ``.ci/run`` installs it and names it in
``LLM_SIDECAR_CLAUDE_CODE``; else ``claude`` on PATH is used.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from sidecar.fake import FakeProvider, InvalidKey, RateLimited, Reply, fingerprint
from sidecar.fingerprints import secret_hash
from tests.conftest import leaked
from tests.gateway.conftest import Gateway
from tests.gateway.tools import find_tool, run_tool, sealed_env, skip_without

CLAUDE = find_tool("LLM_SIDECAR_CLAUDE_CODE", "claude")
pytestmark = skip_without(
    CLAUDE, "Claude Code", "npm install @anthropic-ai/claude-code", "LLM_SIDECAR_CLAUDE_CODE"
)


def run_claude(gateway: Gateway, tmp_path: Path, prompt: str) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "claude-home"
    work = tmp_path / "project"
    work.mkdir()
    env = sealed_env(
        home,
        {
            "CLAUDE_CONFIG_DIR": str(home / ".claude"),
            "ANTHROPIC_BASE_URL": f"{gateway.url}/anthropic",  # as `gateway env` prints it
            "ANTHROPIC_AUTH_TOKEN": gateway.token,
            # Loopback only: no telemetry, update checks or error reports.
            "DISABLE_TELEMETRY": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_ERROR_REPORTING": "1",
        },
    )
    assert CLAUDE is not None
    return run_tool([CLAUDE, "-p", prompt], work, env)


def test_claude_code_answers_through_the_gateway_and_never_sees_the_failed_keys(
    gateway: Gateway,
    fake: FakeProvider,
    make_key: Callable[..., str],
    home: Path,
    tmp_path: Path,
) -> None:
    busy, overloaded, revoked, good = make_key(), make_key(), make_key(), make_key()
    fake.script(busy, [], default=RateLimited(retry_after=300))
    # An overloaded_error right after message_start: held back, replayed on the next key.
    fake.script(overloaded, [], default=Reply("never seen", error_after=1))
    fake.script(revoked, [], default=InvalidKey())
    fake.script(good, [], default=Reply("Hello from the llm-sidecar pool."))
    gateway.add_keys("anthropic", [busy, overloaded, revoked, good])

    done = run_claude(gateway, tmp_path, "say hi")

    assert done.returncode == 0, done.stderr[-2000:]
    assert "Hello from the llm-sidecar pool." in done.stdout
    assert not leaked(done.stdout + done.stderr)
    # Claude Code's requests, as the provider saw them: pool keys, never the token.
    messages = [r for r in fake.requests if r.path == "/v1/messages"]
    assert messages, [r.path for r in fake.requests]
    fingerprints = [fingerprint(k) for k in (busy, overloaded, revoked, good)]
    assert [r.key for r in messages[:4]] == fingerprints  # in pool order, each once
    assert {r.key for r in messages} <= set(fingerprints)  # the token never went upstream
    assert all(r.status == 200 for r in messages[4:])  # later requests: the good key
    first = messages[0]
    assert first.query == "beta=true"  # Claude Code's own query, kept
    agent = first.headers["user-agent"]
    # Ours appended to the client's, never in its place.
    assert agent.startswith("claude-cli/") and " llm-sidecar/" in agent
    # The rotation is in the shared files: the revoked key evicted, the others cooling.
    pool = (home / "pool.json").read_text()
    assert revoked not in pool and secret_hash(revoked) not in pool
    status = gateway.keypool.status("anthropic")
    states = {c.fingerprint[-4:]: c for c in status.credentials}
    # An API key's 429 cools the model class it was for; a 529 rests it for seconds only,
    # which may be over by now, so the overloaded key is not asked about.
    assert states[busy[-4:]].resting_until
    assert states[good[-4:]].state == "ok"
