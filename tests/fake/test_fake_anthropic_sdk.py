"""Fidelity: the official anthropic SDK, as a client, accepts what the fake sends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anthropic
import httpx
import httpx2
import pytest
from fake_support import KEY, VERSION, anthropic_headers, messages_body

from sidecar.fake import (
    SCOPE_MESSAGE,
    Error,
    FakeProvider,
    InvalidKey,
    Overloaded,
    ProxyErrorPage,
    RateLimited,
    RedactedThinking,
    Reply,
    ScopeRefused,
    Text,
    Thinking,
    ToolUse,
    Usage,
)

MESSAGES: list[Any] = [{"role": "user", "content": "Say something"}]
UNICODE = "Grüße 🎉🚀 from 東京 — 漢字かな 한국어, e\u0301, 👩‍👩‍👧 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢."


def client(fake: FakeProvider, key: str = KEY, **kwargs: Any) -> anthropic.Anthropic:
    # Strict validation: the SDK checks every response against its own models.
    return anthropic.Anthropic(
        api_key=key,
        base_url=fake.url,
        max_retries=0,
        timeout=5,
        _strict_response_validation=True,
        **kwargs,
    )


def stream_text(fake: FakeProvider, key: str = KEY) -> str:
    with client(fake, key).messages.stream(
        model="claude-test", max_tokens=64, messages=MESSAGES
    ) as stream:
        return "".join(stream.text_stream)


def test_streamed_text_equals_scripted_text(fake: FakeProvider) -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 5
    fake.script(KEY, [Reply([Text(text)], chunk=3)])
    events = list(
        client(fake).messages.create(
            model="claude-test", max_tokens=64, messages=MESSAGES, stream=True
        )
    )
    deltas = [e.delta.text for e in events if e.type == "content_block_delta"]
    assert "".join(deltas) == text
    assert all(len(d) == 3 for d in deltas[:-1])  # chunk=3: three characters a delta
    assert [e.type for e in events[:2]] == ["message_start", "content_block_start"]
    assert [e.type for e in events[-3:]] == ["content_block_stop", "message_delta", "message_stop"]
    assert events[0].message.model == "claude-test"


def test_default_reply_names_model_and_message_length_not_the_key(fake: FakeProvider) -> None:
    text = stream_text(fake)
    assert text == "Hello from the fake claude-test. Your last message was 13 characters long."
    assert KEY not in text and KEY[-4:] not in text


def test_thinking_signature_and_redacted_thinking(fake: FakeProvider) -> None:
    fake.script(
        KEY,
        [
            Reply(
                [
                    Thinking("Let me think about this step by step.", "sig-abc=="),
                    RedactedThinking("opaque-data"),
                    Text("Answer."),
                ]
            )
        ],
    )
    with client(fake).messages.stream(
        model="claude-test", max_tokens=64, messages=MESSAGES
    ) as stream:
        message = stream.get_final_message()
    thinking, redacted, text = message.content
    assert thinking.type == "thinking"
    assert thinking.thinking == "Let me think about this step by step."
    assert thinking.signature == "sig-abc=="
    assert redacted.type == "redacted_thinking" and redacted.data == "opaque-data"
    assert text.type == "text" and text.text == "Answer."
    assert message.stop_reason == "end_turn"


def test_tool_input_is_reassembled_by_the_stream_helper(fake: FakeProvider) -> None:
    tool_input = {"path": "src/ü.py", "lines": [1, 2, 3], "opts": {"deep": {"x": None}}}
    fake.script(
        KEY,
        [Reply([Text("Reading."), ToolUse("toolu_01", "read_file", tool_input)], chunk=4)],
    )
    with client(fake).messages.stream(
        model="claude-test", max_tokens=64, messages=MESSAGES
    ) as stream:
        message = stream.get_final_message()
    tool = message.content[1]
    assert tool.type == "tool_use"
    assert (tool.id, tool.name, tool.input) == ("toolu_01", "read_file", tool_input)
    assert message.stop_reason == "tool_use"


@pytest.mark.parametrize("delta_usage", ["full", "output"])
def test_usage_with_cache_tokens(fake: FakeProvider, delta_usage: Any) -> None:
    usage = Usage(input=11, output=22, cache_read=33, cache_write=44)
    fake.script(KEY, [Reply(usage=usage, delta_usage=delta_usage), Reply(usage=usage)])
    with client(fake).messages.stream(
        model="claude-test", max_tokens=64, messages=MESSAGES
    ) as stream:
        streamed = stream.get_final_message().usage
    whole = (
        client(fake).messages.create(model="claude-test", max_tokens=64, messages=MESSAGES).usage
    )
    for got in (streamed, whole):
        assert got.input_tokens == 11
        assert got.output_tokens == 22
        assert got.cache_read_input_tokens == 33
        assert got.cache_creation_input_tokens == 44


def test_non_streaming_message(fake: FakeProvider) -> None:
    fake.script(
        KEY,
        [
            Reply(
                [Thinking("hmm", "s1"), Text("Hi"), ToolUse("t1", "f", {"a": 1})],
                stop_reason="max_tokens",
            )
        ],
    )
    message = client(fake).messages.create(model="claude-test", max_tokens=64, messages=MESSAGES)
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[2].input == {"a": 1}
    assert message.stop_reason == "max_tokens"
    assert message.id == "msg_fake000000"


def test_rate_limited_429_with_reset_headers(fake: FakeProvider) -> None:
    fake.script(KEY, [RateLimited(retry_after=30, reset_in=60)])
    before = datetime.now(UTC)
    with pytest.raises(anthropic.RateLimitError) as caught:
        stream_text(fake)
    err = caught.value
    assert err.status_code == 429
    assert err.response.headers["retry-after"] == "30"
    reset = datetime.fromisoformat(err.response.headers["anthropic-ratelimit-requests-reset"])
    assert 55 <= (reset - before).total_seconds() <= 65
    assert err.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert err.response.headers["request-id"] == "req_fake000000"
    # The queue is consumed: the next request gets the default reply.
    assert stream_text(fake).startswith("Hello from the fake")


def test_overloaded_529(fake: FakeProvider) -> None:
    fake.script(KEY, [Overloaded()])
    with pytest.raises(anthropic.OverloadedError) as caught:
        stream_text(fake)
    assert caught.value.status_code == 529
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


def test_unknown_key_and_invalid_key_are_authentication_errors(fake: FakeProvider) -> None:
    with pytest.raises(anthropic.AuthenticationError, match="invalid x-api-key"):
        stream_text(fake, key="sk-ant-api03-never-scripted-9999")
    fake.script(KEY, [InvalidKey()])
    with pytest.raises(anthropic.AuthenticationError, match="invalid x-api-key"):
        stream_text(fake)


def test_scope_refusal(fake: FakeProvider) -> None:
    fake.script(KEY, [ScopeRefused(), ScopeRefused(status=403)])
    with pytest.raises(anthropic.BadRequestError) as caught:
        stream_text(fake)
    assert caught.value.body["error"]["message"] == SCOPE_MESSAGE  # type: ignore[index]
    with pytest.raises(anthropic.PermissionDeniedError):
        stream_text(fake)


def test_500_and_html_proxy_page(fake: FakeProvider) -> None:
    fake.script(KEY, [Error("api_error"), ProxyErrorPage(502)])
    with pytest.raises(anthropic.InternalServerError) as caught:
        stream_text(fake)
    assert caught.value.status_code == 500
    with pytest.raises(anthropic.InternalServerError) as caught:
        stream_text(fake)
    assert caught.value.status_code == 502
    assert "<h1>502 Bad Gateway</h1>" in str(caught.value.body)
    assert caught.value.response.headers["content-type"] == "text/html"


def test_mid_stream_error_event(fake: FakeProvider) -> None:
    fake.script(KEY, [Reply([Text("one two three four five six")], chunk=4, error_after=4)])
    received: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client(fake).messages.stream(
            model="claude-test", max_tokens=64, messages=MESSAGES
        ) as stream,
    ):
        for text in stream.text_stream:
            received.append(text)
    # message_start, ping, content_block_start, one delta: then the error.
    assert received == ["one "]
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


@pytest.mark.parametrize("split", ["random", 1, 7, [1, 2, 3, 5, 8]])
def test_byte_level_splits_decode_identically(fake: FakeProvider, split: Any) -> None:
    blocks = [
        Thinking("思考中… 🤔" * 3, "sïg"),
        Text(UNICODE * 4),
        ToolUse("t", "f", {"q": UNICODE}),
    ]
    for seed in range(3) if split == "random" else [0]:
        fake.script(KEY, [Reply(blocks, split=split, seed=seed, chunk=5)])
        with client(fake).messages.stream(
            model="claude-test", max_tokens=64, messages=MESSAGES
        ) as stream:
            message = stream.get_final_message()
        assert message.content[0].thinking == "思考中… 🤔" * 3
        assert message.content[0].signature == "sïg"
        assert message.content[1].text == UNICODE * 4
        assert message.content[2].input == {"q": UNICODE}


def test_the_sdk_authenticates_with_bearer_and_the_fake_accepts_both(fake: FakeProvider) -> None:
    sent: list[httpx2.Request] = []
    http_client = httpx2.Client(event_hooks={"request": [sent.append]})
    assert stream_text_with(client(fake, http_client=http_client)).startswith("Hello")
    # This SDK major sends the key as a bearer token with its own API version.
    assert sent[0].headers["authorization"] == f"Bearer {KEY}"
    assert "x-api-key" not in sent[0].headers
    assert sent[0].headers["anthropic-version"] == anthropic._constants.ANTHROPIC_API_VERSION
    # Older clients (and our provider) send x-api-key with 2023-06-01.
    response = httpx.post(
        f"{fake.url}/v1/messages",
        headers=anthropic_headers(),
        json=messages_body(stream=False),
        timeout=5,
    )
    assert response.status_code == 200
    assert [r.key for r in fake.requests] == ["sk-ant-…0001", "sk-ant-…0001"]
    assert all(
        "authorization" not in r.headers and "x-api-key" not in r.headers for r in fake.requests
    )


def stream_text_with(c: anthropic.Anthropic) -> str:
    with c.messages.stream(model="claude-test", max_tokens=64, messages=MESSAGES) as stream:
        return "".join(stream.text_stream)


def test_missing_version_header_and_bad_bodies_are_400(fake: FakeProvider) -> None:
    url = f"{fake.url}/v1/messages"
    no_version = httpx.post(url, headers={"x-api-key": KEY}, json=messages_body(), timeout=5)
    assert no_version.status_code == 400
    assert no_version.json()["error"] == {
        "type": "invalid_request_error",
        "message": "anthropic-version: header is required",
    }
    headers = {"x-api-key": KEY, "anthropic-version": VERSION}
    no_max_tokens = httpx.post(url, headers=headers, json={"model": "m", "messages": []}, timeout=5)
    assert no_max_tokens.status_code == 400
    no_key = httpx.post(
        url, headers={"anthropic-version": VERSION}, json=messages_body(), timeout=5
    )
    assert no_key.status_code == 401
    assert no_key.json()["error"]["type"] == "authentication_error"
    # A rejected request does not consume a scripted step.
    fake.script(KEY, [Overloaded()])
    httpx.post(url, headers={"x-api-key": KEY}, json=messages_body(), timeout=5)
    assert httpx.post(url, headers=headers, json=messages_body(), timeout=5).status_code == 529
    assert [r.step for r in fake.requests][-2:] == ["invalid", "error:overloaded_error"]


async def test_async_client_in_an_async_test(fake: FakeProvider) -> None:
    fake.script(KEY, [Reply([Text("async " * 20)], interval=0.001)])
    async with (
        anthropic.AsyncAnthropic(
            api_key=KEY, base_url=fake.url, max_retries=0, timeout=5
        ) as aclient,
        aclient.messages.stream(model="claude-test", max_tokens=64, messages=MESSAGES) as stream,
    ):
        message = await stream.get_final_message()
    assert message.content[0].text == "async " * 20
    await fake.wait_for_async(lambda: fake.events, timeout=2)
    assert fake.events[0].name == "completed"


def test_keep_alive_connection_is_reused(fake: FakeProvider) -> None:
    c = client(fake)
    for _ in range(20):
        stream_text_with(c)
        c.messages.create(model="claude-test", max_tokens=64, messages=MESSAGES)
    assert len(fake.requests) == 40
    assert all(r.status == 200 for r in fake.requests)
    assert {r.connection for r in fake.requests} == {0}  # one connection, kept alive
