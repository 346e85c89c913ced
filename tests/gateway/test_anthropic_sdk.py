"""The official anthropic SDK, pointed at the gateway, the gateway at the fake.

The pool: a rate-limited key, a rejected one, then a good one. The SDK must never see
the 429 or the 401; the pool file and the state show the rotation and the eviction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import anthropic
import pytest

from sidecar.fake import (
    FakeProvider,
    InvalidKey,
    Overloaded,
    RateLimited,
    Reply,
    Text,
    Thinking,
    ToolUse,
    Usage,
    fingerprint,
)
from sidecar.fake._models import ANTHROPIC_MODELS
from tests.gateway.conftest import Gateway

ANSWER = Reply(
    [
        Thinking("Let me look at the file first.", signature="sig-1"),
        Text("I will read it."),
        ToolUse("toolu_1", "read_file", {"path": "src/a.py", "lines": [1, 20]}),
    ],
    usage=Usage(input=12, output=7, cache_read=100, cache_write=5),
)


def rotating_pool(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str]
) -> tuple[str, str, str]:
    busy, revoked, good = make_key(), make_key(), make_key()
    fake.script(busy, [], default=RateLimited(retry_after=300))
    fake.script(revoked, [], default=InvalidKey())
    fake.script(good, [], default=ANSWER)
    gateway.add_keys("anthropic", [busy, revoked, good])
    return busy, revoked, good


def sdk(gateway: Gateway, **kwargs: object) -> anthropic.Anthropic:
    # max_retries=0: a 429 or 401 reaching the SDK would fail the test, not be retried.
    return anthropic.Anthropic(
        api_key=gateway.token, base_url=f"{gateway.url}/anthropic", max_retries=0, **kwargs
    )


def test_streaming_rotates_past_a_rate_limited_and_a_rejected_key(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str], home: Path
) -> None:
    busy, revoked, good = rotating_pool(gateway, fake, make_key)
    client = sdk(gateway)
    with client.messages.stream(
        model="claude-test-1",
        max_tokens=1024,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[{"name": "read_file", "input_schema": {"type": "object"}}],
        messages=[{"role": "user", "content": "read a.py"}],
    ) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == "I will read it."
    kinds = [block.type for block in final.content]
    assert kinds == ["thinking", "text", "tool_use"]
    assert final.content[0].thinking == "Let me look at the file first."  # type: ignore[union-attr]
    tool = final.content[2]
    assert tool.type == "tool_use"
    assert tool.input == {"path": "src/a.py", "lines": [1, 20]}
    assert final.usage.cache_read_input_tokens == 100
    # Each key was tried once, in order; the SDK saw only the good one's answer.
    assert [r.key for r in fake.requests] == [fingerprint(k) for k in (busy, revoked, good)]
    # The rejected key left the pool file; the busy one is cooling down in the state.
    pool = (home / "pool.json").read_text()
    assert revoked not in pool and busy in pool and good in pool
    state = json.loads((home / "state.json").read_text())["providers"]["anthropic"]
    # Cooled whole, or (an API key's per-model limit) for the request's model only.
    assert len(state["cooldowns"]) + len(state.get("modelCooldowns", {})) == 1
    assert state["rotated"] is False  # the good key answered: "(rotated)" clears
    # The answer is counted for the key that gave it, as the sidecar's own requests are.
    (counted,) = [u for u in state["usage"].values() if u.get("requests")]
    assert counted["requests"] == 1


def test_the_request_body_goes_upstream_unchanged_with_only_the_credential_replaced(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    good = make_key()
    fake.script(good, [], default=ANSWER)
    gateway.add_keys("anthropic", [good])
    client = sdk(gateway, default_headers={"anthropic-beta": "fine-grained-tool-streaming"})
    message = client.messages.create(
        model="claude-test-1",
        max_tokens=64,
        system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"a_field_we_do_not_know": {"kept": True}},
        extra_query={"beta": "true"},
    )
    assert message.content[-1].type == "tool_use"
    (sent,) = fake.requests
    assert sent.body["a_field_we_do_not_know"] == {"kept": True}
    assert sent.body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert sent.path == "/v1/messages"
    assert sent.key == fingerprint(good)  # the pool's key, not the gateway token
    assert "fine-grained-tool-streaming" in sent.headers.get("anthropic-beta", "")
    agent = sent.headers["user-agent"]
    assert agent.startswith("Anthropic/Python") and agent.endswith("llm-sidecar/0.1.0")


def test_an_overloaded_error_right_after_message_start_rotates_invisibly(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str], home: Path
) -> None:
    shaky, good = make_key(), make_key()
    # error_after=1: message_start, then an overloaded_error event.
    fake.script(shaky, [], default=Reply("never seen", error_after=1))
    fake.script(good, [], default=Reply("steady answer"))
    gateway.add_keys("anthropic", [shaky, good])
    with sdk(gateway).messages.stream(
        model="claude-test-1", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
    assert text == "steady answer"
    state = json.loads((home / "state.json").read_text())["providers"]["anthropic"]
    # Cooled whole, or (an API key's per-model limit) for the request's model only.
    assert len(state["cooldowns"]) + len(state.get("modelCooldowns", {})) == 1
    assert [r.key for r in fake.requests] == [fingerprint(shaky), fingerprint(good)]


def test_a_mid_stream_error_after_content_passes_through_and_cools_the_key(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str], home: Path
) -> None:
    shaky, good = make_key(), make_key()
    fake.script(shaky, [], default=Reply("a long answer that breaks off", chunk=2, error_after=6))
    fake.script(good, [], default=Reply("unused"))
    gateway.add_keys("anthropic", [shaky, good])
    with (
        pytest.raises(anthropic.APIStatusError) as err,
        sdk(gateway).messages.stream(
            model="claude-test-1", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        for _ in stream.text_stream:
            pass
    assert "overloaded" in str(err.value).lower()
    assert len(fake.requests) == 1  # bytes went out: no replay
    state = json.loads((home / "state.json").read_text())["providers"]["anthropic"]
    # Cooled whole, or (an API key's per-model limit) for the request's model only.
    assert len(state["cooldowns"]) + len(state.get("modelCooldowns", {})) == 1


def test_every_key_cooling_down_is_a_429_with_retry_after(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    first, second = make_key(), make_key()
    fake.script(first, [], default=RateLimited(retry_after=120))
    fake.script(second, [], default=Overloaded())
    gateway.add_keys("anthropic", [first, second])
    with pytest.raises(anthropic.RateLimitError) as err:
        sdk(gateway).messages.create(
            model="claude-test-1", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )
    response = err.value.response
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 120
    assert response.json()["error"]["type"] == "rate_limit_error"
    for key in (first, second):
        assert key not in response.text


def test_count_tokens_and_model_listing_rotate_too(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str], home: Path
) -> None:
    busy, revoked, good = make_key(), make_key(), make_key()
    fake.script(busy, [RateLimited(retry_after=300)], default=Reply("ok"))
    fake.script(revoked, [InvalidKey()])
    fake.script(good, [], default=Reply("ok"))
    gateway.add_keys("anthropic", [busy, revoked, good])
    client = sdk(gateway)
    count = client.messages.count_tokens(
        model="claude-test-1", messages=[{"role": "user", "content": "how many tokens is this?"}]
    )
    assert count.input_tokens > 0
    models = client.models.list()
    assert [m.id for m in models.data] == [m[0] for m in ANTHROPIC_MODELS]
    paths = [(r.path, r.key) for r in fake.requests]
    assert paths == [
        ("/v1/messages/count_tokens", fingerprint(busy)),
        ("/v1/messages/count_tokens", fingerprint(revoked)),
        ("/v1/messages/count_tokens", fingerprint(good)),
        ("/v1/models", fingerprint(good)),  # the pool stays on the key that answered
    ]
    assert revoked not in (home / "pool.json").read_text()


def test_a_setup_token_goes_as_a_bearer_with_the_oauth_beta_beside_the_clients_betas(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    token = make_key("sk-ant-oat01-")
    fake.script(token, [], default=Reply("ok"))
    gateway.add_keys("anthropic", [token])
    client = sdk(gateway, default_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"})
    client.messages.create(
        model="claude-test-1", max_tokens=9, messages=[{"role": "user", "content": "hi"}]
    )
    (sent,) = fake.requests
    assert sent.key == fingerprint(token)  # the fake reads it from the bearer (no x-api-key)
    betas = sent.headers["anthropic-beta"].split(",")
    assert betas == ["interleaved-thinking-2025-05-14", "oauth-2025-04-20"]


def test_a_scope_refusal_skips_the_credential_but_keeps_it(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str], home: Path
) -> None:
    from sidecar.fake import ScopeRefused

    token, key = make_key("sk-ant-oat01-"), make_key()
    fake.script(token, [], default=ScopeRefused())
    fake.script(key, [], default=Reply("from the key"))
    gateway.add_keys("anthropic", [token, key])
    message = sdk(gateway).messages.create(
        model="claude-test-1", max_tokens=9, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == "from the key"  # type: ignore[union-attr]
    assert [r.key for r in fake.requests] == [fingerprint(token), fingerprint(key)]
    assert token in (home / "pool.json").read_text()
