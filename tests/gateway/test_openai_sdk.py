"""The official openai SDK, pointed at the gateway's OpenAI-compatible route."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from sidecar.fake import (
    FakeProvider,
    InvalidKey,
    RateLimited,
    Reply,
    Text,
    ToolUse,
    Usage,
    fingerprint,
)
from sidecar.fake._models import OPENAI_MODELS
from tests.gateway.conftest import Gateway

ANSWER = Reply(
    [Text("Reading it."), ToolUse("call_1", "read_file", {"path": "src/a.py"})],
    usage=Usage(input=30, output=9, cache_read=20),
)


def sdk(gateway: Gateway, provider: str = "openai") -> openai.OpenAI:
    return openai.OpenAI(
        api_key=gateway.token, base_url=f"{gateway.url}/{provider}/v1", max_retries=0
    )


def rotating_pool(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str]
) -> tuple[str, str, str]:
    busy, revoked, good = make_key("sk-proj-"), make_key("sk-proj-"), make_key("sk-proj-")
    fake.script(busy, [], default=RateLimited(retry_after=300))
    fake.script(revoked, [], default=InvalidKey())
    fake.script(good, [], default=ANSWER)
    gateway.add_keys("openai", [busy, revoked, good])
    return busy, revoked, good


def test_streaming_with_a_tool_call_rotates_past_a_429_and_a_401(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str], home: Path
) -> None:
    busy, revoked, good = rotating_pool(gateway, fake, make_key)
    stream = sdk(gateway).chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "read a.py"}],
        tools=[{"type": "function", "function": {"name": "read_file", "parameters": {}}}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, arguments, usage = "", "", None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                arguments += (call.function and call.function.arguments) or ""
    assert text == "Reading it."
    assert json.loads(arguments) == {"path": "src/a.py"}
    assert usage is not None and usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 20
    assert [r.key for r in fake.requests] == [fingerprint(k) for k in (busy, revoked, good)]
    assert {r.path for r in fake.requests} == {"/v1/chat/completions"}
    pool = (home / "pool.json").read_text()
    assert revoked not in pool and busy in pool
    state = json.loads((home / "state.json").read_text())["providers"]["openai"]
    # Cooled whole, or (an API key's per-model limit) for the request's model only.
    assert len(state["cooldowns"]) + len(state.get("modelCooldowns", {})) == 1


def test_a_whole_answer_rotates_too(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    rotating_pool(gateway, fake, make_key)
    completion = sdk(gateway).chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}]
    )
    message = completion.choices[0].message
    assert message.content == "Reading it."
    assert message.tool_calls is not None
    assert json.loads(message.tool_calls[0].function.arguments) == {"path": "src/a.py"}  # type: ignore[union-attr]
    assert len(fake.requests) == 3


def test_an_exhausted_pool_is_a_429_in_openais_shape(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    only = make_key("sk-proj-")
    fake.script(only, [], default=RateLimited(retry_after=90))
    gateway.add_keys("openai", [only])
    with pytest.raises(openai.RateLimitError) as err:
        sdk(gateway).chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.response.status_code == 429
    assert 1 <= int(err.value.response.headers["retry-after"]) <= 90
    assert err.value.response.json()["error"]["code"] == "rate_limit_exceeded"


def test_another_openai_compatible_provider_goes_to_its_own_base_url(
    home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    from tests.gateway.conftest import Gateway as G

    gw = G(home, {"GROQ_BASE_URL": f"{fake.url}/openai/v1"}).start()
    try:
        key = make_key("gsk_")
        fake.script(key, [], default=Reply("from groq"))
        gw.add_keys("groq", [key])
        completion = sdk(gw, "groq").chat.completions.create(
            model="llama-test", messages=[{"role": "user", "content": "hi"}]
        )
        assert completion.choices[0].message.content == "from groq"
        assert fake.requests[0].path == "/openai/v1/chat/completions"
    finally:
        gw.stop()


def test_the_model_listing_rotates_past_a_429_and_a_401(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    *_, good = rotating_pool(gateway, fake, make_key)
    models = sdk(gateway).models.list()
    assert [m.id for m in models.data] == [m[0] for m in OPENAI_MODELS]
    assert [r.path for r in fake.requests] == ["/v1/models"] * 3
    assert fake.requests[-1].key == fingerprint(good)


def test_an_error_event_right_after_the_role_chunk_rotates_invisibly(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str], home: Path
) -> None:
    shaky, good = make_key("sk-proj-"), make_key("sk-proj-")
    # error_after=1: the role chunk, then an error event (overloaded, in OpenAI's shape).
    fake.script(shaky, [], default=Reply("never seen", error_after=1))
    fake.script(good, [], default=Reply("steady answer"))
    gateway.add_keys("openai", [shaky, good])
    stream = sdk(gateway).chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "steady answer"
    assert [r.key for r in fake.requests] == [fingerprint(shaky), fingerprint(good)]
    state = json.loads((home / "state.json").read_text())["providers"]["openai"]
    # Cooled whole, or (an API key's per-model limit) for the request's model only.
    assert len(state["cooldowns"]) + len(state.get("modelCooldowns", {})) == 1


def test_azure_goes_to_the_deployment_of_the_bodys_model_with_its_api_key_header(
    home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    from tests.gateway.conftest import Gateway as G

    env = {
        "AZURE_OPENAI_BASE_URL": fake.url,
        "AZURE_OPENAI_DEPLOYMENT_MAP": "gpt-test=prod-deployment",
    }
    gw = G(home, env).start()
    try:
        key = make_key("azkey-")
        fake.script(key, [], default=Reply("from azure"))
        gw.add_keys("azure-openai", [key])
        completion = sdk(gw, "azure-openai").chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}]
        )
        assert completion.choices[0].message.content == "from azure"
        (sent,) = fake.requests
        assert sent.path == "/openai/deployments/prod-deployment/chat/completions"
        assert sent.query.startswith("api-version=")
        assert sent.key == fingerprint(key)
    finally:
        gw.stop()


def azure_pool(gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str]) -> None:
    """The azure-openai pool: a rate-limited key, then a good one."""
    busy, good = make_key("azkey-"), make_key("azkey-")
    fake.script(busy, [], default=RateLimited(retry_after=300))
    fake.script(good, [], default=Reply("from azure"))
    gateway.add_keys("azure-openai", [busy, good])


def test_the_azure_sdks_own_deployment_paths_go_upstream_as_they_are_and_rotate(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    # AzureOpenAI (and every tool built on it: LiteLLM's azure/, aider, Continue's
    # azure provider) writes the deployment path and api-version itself.
    azure_pool(gateway, fake, make_key)
    client = openai.AzureOpenAI(
        azure_endpoint=f"{gateway.url}/azure-openai",
        api_key=gateway.token,
        api_version="2024-06-01",
        max_retries=0,
    )
    completion = client.chat.completions.create(
        model="my-deployment", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "from azure"
    stream = client.chat.completions.create(
        model="my-deployment", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "from azure"
    # The first request rotates past the rate-limited key; the second finds it cooling.
    assert [r.status for r in fake.requests] == [429, 200, 200]
    for sent in fake.requests:
        assert sent.path == "/openai/deployments/my-deployment/chat/completions"
        assert sent.query == "api-version=2024-06-01"  # the client's, once
    assert [m.id for m in client.models.list()] == [m[0] for m in OPENAI_MODELS]
    assert (fake.requests[-1].path, fake.requests[-1].query) == (
        "/openai/models",
        "api-version=2024-06-01",
    )


def test_azures_v1_api_path_goes_upstream_as_it_is_and_rotates(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    azure_pool(gateway, fake, make_key)
    client = openai.OpenAI(
        base_url=f"{gateway.url}/azure-openai/openai/v1/", api_key=gateway.token, max_retries=0
    )
    completion = client.chat.completions.create(
        model="my-deployment", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "from azure"
    assert [(r.path, r.status) for r in fake.requests] == [
        ("/openai/v1/chat/completions", 429),
        ("/openai/v1/chat/completions", 200),
    ]


@pytest.mark.parametrize(
    "base", ["/openai", "/openai/v1/", "/openai/"], ids=["no-v1", "slash", "double-slash"]
)
def test_a_base_url_without_v1_or_with_a_trailing_slash_still_rotates(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str], base: str
) -> None:
    # Tools that join "base + /chat/completions" (or "base + /v1/chat/completions")
    # as strings send these when the user's base URL lacks /v1 or ends in a slash.
    busy, good = make_key("sk-proj-"), make_key("sk-proj-")
    fake.script(busy, [], default=RateLimited(retry_after=300))
    fake.script(good, [], default=Reply("hello"))
    gateway.add_keys("openai", [busy, good])
    path = "/v1/chat/completions" if base == "/openai/" else "/chat/completions"
    resp = httpx.post(
        f"{gateway.url}{base}{path}",
        headers=gateway.headers(),
        json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "hello"
    assert [(r.path, r.status) for r in fake.requests] == [
        ("/v1/chat/completions", 429),
        ("/v1/chat/completions", 200),
    ]


def test_the_clients_organization_and_project_headers_do_not_go_upstream(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    # The SDKs send OpenAI-Organization / OpenAI-Project when OPENAI_ORG_ID /
    # OPENAI_PROJECT_ID are set. They name the caller's own key's organization: with a
    # pool key of another one OpenAI answers 401 mismatched_organization, which would
    # evict good keys from the pool one after another.
    key = make_key("sk-proj-")
    fake.script(key, [], default=Reply("hello"))
    gateway.add_keys("openai", [key])
    client = openai.OpenAI(
        api_key=gateway.token,
        base_url=f"{gateway.url}/openai/v1",
        organization="org-of-the-client",
        project="proj_of_the_client",
        max_retries=0,
    )
    completion = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "hello"
    (sent,) = fake.requests
    assert "openai-organization" not in sent.headers
    assert "openai-project" not in sent.headers


def test_the_responses_api_streamed_rotates_past_a_429_a_401_and_an_early_error_event(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str], home: Path
) -> None:
    # What opencode's built-in openai provider and Codex CLI send: POST /v1/responses.
    busy, revoked, shaky = make_key("sk-proj-"), make_key("sk-proj-"), make_key("sk-proj-")
    good = make_key("sk-proj-")
    fake.script(busy, [], default=RateLimited(retry_after=300))
    fake.script(revoked, [], default=InvalidKey())
    # An error event right after response.created: held back, replayed on the next key.
    fake.script(
        shaky, [], default=Reply("never seen", error_after=2, error_type="rate_limit_error")
    )
    fake.script(good, [], default=ANSWER)
    gateway.add_keys("openai", [busy, revoked, shaky, good])
    with sdk(gateway).responses.stream(model="gpt-test", input="read a.py") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "error" not in kinds
    assert final.output_text == "Reading it."
    (call,) = [item for item in final.output if item.type == "function_call"]
    assert (call.name, json.loads(call.arguments)) == ("read_file", {"path": "src/a.py"})
    assert [r.key for r in fake.requests] == [fingerprint(k) for k in (busy, revoked, shaky, good)]
    assert all(r.path == "/v1/responses" for r in fake.requests)
    assert revoked not in (home / "pool.json").read_text()
    states = {c.fingerprint[-4:]: c for c in gateway.keypool.status("openai").credentials}
    # An API key's 429 and an early rate-limit event rest that key for the model only.
    assert [m.model for m in states[busy[-4:]].model_cooldowns] == ["gpt-test"]
    assert [m.model for m in states[shaky[-4:]].model_cooldowns] == ["gpt-test"]
    assert states[good[-4:]].state == "ok" and not states[good[-4:]].model_cooldowns


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_responses_api_rotates_and_its_usage_is_read(
    gateway: Gateway,
    fake: FakeProvider,
    make_key: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
    stream: bool,
) -> None:
    busy, revoked, good = rotating_pool(gateway, fake, make_key)
    with caplog.at_level(logging.INFO, logger="sidecar.gateway"):
        if stream:
            with sdk(gateway).responses.stream(model="gpt-test", input="read a.py") as events:
                response = events.get_final_response()
        else:
            response = sdk(gateway).responses.create(model="gpt-test", input="read a.py")
        # The line is written once the handler returns, just after the last byte.
        for _ in range(200):
            lines = [r.getMessage() for r in caplog.records if r.name == "sidecar.gateway"]
            if any(line.startswith("openai ") for line in lines):
                break
            time.sleep(0.02)
    assert response.output_text == "Reading it."
    assert [r.key for r in fake.requests] == [fingerprint(k) for k in (busy, revoked, good)]
    # ANSWER's usage: 30 new input tokens and 20 cached (Responses counts 50 with 20
    # cached, as chat completions do), 9 out.
    line = next(line for line in lines if line.startswith("openai "))
    assert "in=30 out=9 cache_read=20" in line, line
