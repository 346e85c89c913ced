"""The OpenAI-compatible endpoints, read with httpx and httpx-sse as a client would."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fake_support import OPENAI_KEY
from httpx_sse import connect_sse

from sidecar.fake import (
    Error,
    FakeProvider,
    Overloaded,
    RateLimited,
    Reply,
    Text,
    Thinking,
    ToolUse,
    Usage,
)

BODY: dict[str, Any] = {
    "model": "gpt-test",
    "messages": [{"role": "user", "content": "Hi there"}],
    "stream": True,
    "stream_options": {"include_usage": True},
}


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


def stream(
    http: httpx.Client,
    fake: FakeProvider,
    path: str = "/v1/chat/completions",
    headers: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> list[str]:
    """The data lines of one streamed completion, in order."""
    with connect_sse(
        http,
        "POST",
        fake.url + path,
        headers=headers if headers is not None else {"authorization": f"Bearer {OPENAI_KEY}"},
        json=body if body is not None else BODY,
    ) as events:
        events.response.raise_for_status()
        assert events.response.headers["content-type"].startswith("text/event-stream")
        return [sse.data for sse in events.iter_sse()]


def chunks(data: list[str]) -> list[dict[str, Any]]:
    assert data[-1] == "[DONE]"
    return [json.loads(d) for d in data[:-1]]


def test_content_finish_reason_usage_and_done(http: httpx.Client, fake: FakeProvider) -> None:
    text = "Ünïcode 🎉 and plain words, streamed in pieces."
    fake.script(
        OPENAI_KEY,
        [Reply([Text(text)], chunk=4, usage=Usage(input=10, output=7, cache_read=5))],
    )
    parsed = chunks(stream(http, fake))
    first, *middle, finish, usage = parsed
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert first["object"] == "chat.completion.chunk" and first["model"] == "gpt-test"
    assert "".join(c["choices"][0]["delta"]["content"] for c in middle) == text
    assert all(c["choices"][0]["finish_reason"] is None for c in middle)
    assert finish["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert usage["choices"] == []
    assert usage["usage"] == {
        "prompt_tokens": 15,
        "completion_tokens": 7,
        "total_tokens": 22,
        "prompt_tokens_details": {"cached_tokens": 5},
    }
    assert len({c["id"] for c in parsed}) == 1


def test_no_usage_chunk_unless_asked(http: httpx.Client, fake: FakeProvider) -> None:
    body = {k: v for k, v in BODY.items() if k != "stream_options"}
    parsed = chunks(stream(http, fake, body=body))
    assert all("usage" not in c for c in parsed)
    assert parsed[-1]["choices"][0]["finish_reason"] == "stop"


def test_tool_call_arguments_reassemble(http: httpx.Client, fake: FakeProvider) -> None:
    first_args = {"path": "a/ü.py", "range": [1, 20]}
    second_args = {"query": "日本語", "deep": {"x": True}}
    fake.script(
        OPENAI_KEY,
        [
            Reply(
                [
                    Thinking("Need two tools."),
                    ToolUse("call_1", "read", first_args),
                    ToolUse("call_2", "search", second_args),
                ],
                chunk=3,
            )
        ],
    )
    parsed = chunks(stream(http, fake))
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in parsed[:-1])
    assert reasoning == "Need two tools."
    calls: dict[int, dict[str, str]] = {}
    for c in parsed[:-1]:
        for call in c["choices"][0]["delta"].get("tool_calls", []):
            slot = calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
            if "id" in call:
                assert call["type"] == "function"
                slot["id"] = call["id"]
                slot["name"] = call["function"]["name"]
            slot["arguments"] += call["function"]["arguments"]
    assert calls[0]["id"] == "call_1" and calls[0]["name"] == "read"
    assert json.loads(calls[0]["arguments"]) == first_args
    assert calls[1]["id"] == "call_2" and calls[1]["name"] == "search"
    assert json.loads(calls[1]["arguments"]) == second_args
    assert parsed[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_max_tokens_maps_to_length(http: httpx.Client, fake: FakeProvider) -> None:
    fake.script(OPENAI_KEY, [Reply([Text("cut")], stop_reason="max_tokens")])
    assert chunks(stream(http, fake))[-2]["choices"][0]["finish_reason"] == "length"


def test_non_streaming_completion(http: httpx.Client, fake: FakeProvider) -> None:
    fake.script(OPENAI_KEY, [Reply([Text("Hello"), ToolUse("c1", "f", {"a": 1})])])
    body = {"model": "gpt-test", "messages": BODY["messages"]}
    response = http.post(
        fake.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {OPENAI_KEY}"},
        json=body,
    )
    assert response.status_code == 200
    data = response.json()
    assert data["object"] == "chat.completion"
    choice = data["choices"][0]
    assert choice["message"]["content"] == "Hello"
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a":1}'}
    assert choice["finish_reason"] == "tool_calls"
    assert data["usage"]["total_tokens"] == (
        data["usage"]["prompt_tokens"] + data["usage"]["completion_tokens"]
    )


def test_paths_and_azure_api_key(http: httpx.Client, fake: FakeProvider) -> None:
    data = stream(http, fake, path="/chat/completions")
    assert data[-1] == "[DONE]"
    azure = stream(
        http,
        fake,
        path="/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21",
        headers={"api-key": OPENAI_KEY},
        body={k: v for k, v in BODY.items() if k != "model"},
    )
    assert json.loads(azure[0])["model"] == "my-gpt"
    assert [r.path for r in fake.requests] == [
        "/chat/completions",
        "/openai/deployments/my-gpt/chat/completions",
    ]


def test_unknown_key_error_body(http: httpx.Client, fake: FakeProvider) -> None:
    response = http.post(
        fake.url + "/v1/chat/completions",
        headers={"authorization": "Bearer sk-proj-not-a-scripted-key-7777"},
        json=BODY,
    )
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_api_key"
    assert error["message"].startswith("Incorrect API key provided: sk-proj-…7777.")
    assert "not-a-scripted" not in response.text
    missing = http.post(fake.url + "/v1/chat/completions", json=BODY)
    assert missing.status_code == 401 and missing.json()["error"]["code"] is None


def test_rate_limit_error_in_openai_terms(http: httpx.Client, fake: FakeProvider) -> None:
    fake.script(OPENAI_KEY, [RateLimited(retry_after=20, reset_in=360), Overloaded()])
    headers = {"authorization": f"Bearer {OPENAI_KEY}"}
    response = http.post(fake.url + "/v1/chat/completions", headers=headers, json=BODY)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "20"
    assert response.headers["x-ratelimit-reset-requests"] == "6m0s"
    assert "anthropic-ratelimit-requests-reset" not in response.headers
    assert response.json() == {
        "error": {
            "message": "Rate limit reached for requests. Please try again later.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    overloaded = http.post(fake.url + "/v1/chat/completions", headers=headers, json=BODY)
    assert overloaded.status_code == 529
    assert overloaded.json()["error"]["type"] == "server_error"


def test_explicit_openai_error_fields(http: httpx.Client, fake: FakeProvider) -> None:
    fake.script(
        OPENAI_KEY,
        [Error("insufficient_quota"), Error("rate_limit_error", "slow down", code="tokens_x")],
    )
    headers = {"authorization": f"Bearer {OPENAI_KEY}"}
    quota = http.post(fake.url + "/v1/chat/completions", headers=headers, json=BODY)
    assert quota.status_code == 429
    assert quota.json()["error"]["code"] == "insufficient_quota"
    custom = http.post(fake.url + "/v1/chat/completions", headers=headers, json=BODY)
    assert custom.json()["error"]["message"] == "slow down"
    assert custom.json()["error"]["code"] == "tokens_x"


def test_mid_stream_error_chunk(http: httpx.Client, fake: FakeProvider) -> None:
    fake.script(OPENAI_KEY, [Reply([Text("a b c d e f g h")], chunk=2, error_after=3)])
    data = stream(http, fake)
    assert len(data) == 4 and "[DONE]" not in data
    assert json.loads(data[-1])["error"]["type"] == "server_error"
    assert re.fullmatch(
        r"[a-z ]+", "".join(json.loads(d)["choices"][0]["delta"]["content"] for d in data[:3])
    )
