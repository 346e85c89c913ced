"""A real client through the gateway: aider (PyPI ``aider-chat``), ``aider --message``.

aider talks to providers through LiteLLM: ``OPENAI_API_BASE`` for ``openai/…`` models,
``ANTHROPIC_API_BASE`` for ``anthropic/…`` and ``AZURE_API_BASE`` (with the Azure SDK's
deployment paths) for ``azure/…``, as docs/gateway.md says. Its install is large (about
700 MB with LiteLLM and its dependencies), so ``.ci/run`` does not install it: the test
runs where ``LLM_SIDECAR_AIDER`` names it (``pip install aider-chat`` in a venv of its
own) or ``aider`` is on PATH, and is skipped elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.fake import FakeProvider, RateLimited, Reply, fingerprint
from tests.gateway.conftest import Gateway
from tests.gateway.tools import find_tool, requests_to, run_tool, sealed_env, skip_without

AIDER = find_tool("LLM_SIDECAR_AIDER", "aider")
pytestmark = skip_without(
    AIDER, "aider", "pip install aider-chat", "LLM_SIDECAR_AIDER", in_ci=False
)

ANSWER = "Hello from the llm-sidecar pool."

# provider in the pool, aider's model, its variables (URL then key), the upstream path
CASES = {
    "openai": ("openai", "openai/gpt-4o", "OPENAI_API_BASE", "OPENAI_API_KEY", "/openai/v1"),
    "anthropic": (
        "anthropic",
        "anthropic/claude-sonnet-4-5",
        "ANTHROPIC_API_BASE",
        "ANTHROPIC_API_KEY",
        "/anthropic",
    ),
    "azure": (
        "azure-openai",
        "azure/my-deployment",
        "AZURE_API_BASE",
        "AZURE_API_KEY",
        "/azure-openai",
    ),
}
UPSTREAM = {
    "openai": "/v1/chat/completions",
    "anthropic": "/v1/messages",
    "azure-openai": "/openai/deployments/my-deployment/chat/completions",
}


@pytest.mark.parametrize("case", CASES)
def test_aider_answers_through_the_gateway_and_never_sees_the_rate_limited_key(
    gateway: Gateway,
    fake: FakeProvider,
    make_key: Callable[..., str],
    tmp_path: Path,
    case: str,
) -> None:
    provider, model, url_variable, key_variable, base = CASES[case]
    busy, good = make_key(), make_key()
    fake.script(busy, [], default=RateLimited(retry_after=300))
    fake.script(good, [], default=Reply(ANSWER))
    gateway.add_keys(provider, [busy, good])
    work = tmp_path / "project"
    work.mkdir()
    env = sealed_env(
        tmp_path / "aider-home",
        {
            url_variable: f"{gateway.url}{base}",
            key_variable: gateway.token,
            "AZURE_API_VERSION": "2024-10-21",
            # Loopback only: LiteLLM's bundled price list instead of downloading it.
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        },
    )
    assert AIDER is not None
    argv = [AIDER, "--model", model, "--message", "say hi", "--yes", "--no-git"]
    argv += ["--no-check-update", "--no-show-model-warnings", "--no-analytics", "--no-pretty"]
    done = run_tool(argv, work, env)

    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    assert ANSWER in done.stdout
    assert "RateLimitError" not in done.stdout + done.stderr
    sent = requests_to(fake, UPSTREAM[provider], [busy, good])
    assert [(r.key, r.status) for r in sent] == [(fingerprint(busy), 429), (fingerprint(good), 200)]
