"""A real client through the gateway: the Continue CLI (npm ``@continuedev/cli``), ``cn -p``.

It reads the same ``config.yaml`` models as Continue's editor extensions, so this checks
docs/gateway.md's Continue settings: ``provider: openai`` with ``apiBase`` ``/openai/v1``
and ``provider: anthropic`` with ``apiBase`` ``/anthropic/v1/``. ``.ci/run`` installs it
and names it in ``LLM_SIDECAR_CONTINUE_CLI``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sidecar.fake import FakeProvider, InvalidKey, RateLimited, Reply, fingerprint
from tests.gateway.conftest import Gateway
from tests.gateway.tools import find_tool, requests_to, run_tool, sealed_env, skip_without

CN = find_tool("LLM_SIDECAR_CONTINUE_CLI", "cn")
pytestmark = skip_without(
    CN, "The Continue CLI", "npm install @continuedev/cli", "LLM_SIDECAR_CONTINUE_CLI"
)


def run_cn(gateway: Gateway, tmp_path: Path, provider: str, model: str, api_base: str) -> str:
    work = tmp_path / "project"
    work.mkdir()
    # docs/gateway.md's model entry, as config.yaml takes it.
    (work / "config.yaml").write_text(
        "name: llm-sidecar\nversion: 0.0.1\nschema: v1\nmodels:\n"
        f"  - name: via llm-sidecar\n    provider: {provider}\n    model: {model}\n"
        f"    apiBase: {gateway.url}{api_base}\n    apiKey: {gateway.token}\n"
        "    roles: [chat]\n"
    )
    home = tmp_path / "cn-home"
    env = sealed_env(
        home,
        {
            "CONTINUE_GLOBAL_DIR": str(home / ".continue"),
            # Loopback only: no metrics, no self-update.
            "CONTINUE_METRICS_ENABLED": "0",
            "CONTINUE_CLI_ENABLE_TELEMETRY": "0",
            "CONTINUE_CLI_AUTO_UPDATED": "true",
        },
    )
    assert CN is not None
    done = run_tool([CN, "-p", "say hi", "--config", str(work / "config.yaml")], work, env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    return done.stdout


def test_continue_with_the_openai_provider_never_sees_the_rate_limited_key(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str], tmp_path: Path
) -> None:
    busy, revoked, good = make_key("sk-proj-"), make_key("sk-proj-"), make_key("sk-proj-")
    fake.script(busy, [], default=RateLimited(retry_after=300))
    fake.script(revoked, [], default=InvalidKey())
    fake.script(good, [], default=Reply("Hello from the llm-sidecar pool."))
    gateway.add_keys("openai", [busy, revoked, good])

    stdout = run_cn(gateway, tmp_path, "openai", "gpt-4o", "/openai/v1")

    assert stdout.strip() == "Hello from the llm-sidecar pool."
    sent = requests_to(fake, "/v1/chat/completions", [busy, revoked, good])
    assert [r.key for r in sent] == [fingerprint(k) for k in (busy, revoked, good)]
    assert sent[-1].stream and " llm-sidecar/" in sent[-1].headers["user-agent"]


def test_continue_with_the_anthropic_provider_never_sees_the_rate_limited_key(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str], tmp_path: Path
) -> None:
    busy, overloaded, good = make_key(), make_key(), make_key()
    fake.script(busy, [], default=RateLimited(retry_after=300))
    fake.script(overloaded, [], default=Reply("never seen", error_after=1))
    fake.script(good, [], default=Reply("Hello from the llm-sidecar pool."))
    gateway.add_keys("anthropic", [busy, overloaded, good])

    stdout = run_cn(gateway, tmp_path, "anthropic", "claude-sonnet-4-5", "/anthropic/v1/")

    assert stdout.strip() == "Hello from the llm-sidecar pool."
    sent = requests_to(fake, "/v1/messages", [busy, overloaded, good])
    assert [r.key for r in sent] == [fingerprint(k) for k in (busy, overloaded, good)]
    # Continue's own beta header, kept.
    assert "prompt-caching" in sent[-1].headers.get("anthropic-beta", "")
