"""The Anthropic flavour: request building, event parsing, failures."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import attrs
import httpx
import pytest

import sidecar
from sidecar.providers import (
    SignatureDelta,
    TextDelta,
    ToolInputDelta,
    ToolUseStart,
    ToolUseStop,
    UpstreamFailure,
    Usage,
    UsageDelta,
    get_provider,
)
from sidecar.rotation.classify import FailureClass
from tests.providers.support import (
    anthropic_events,
    collect,
    cred,
    end_of,
    request,
    sse,
    streaming,
)

ANTHROPIC = get_provider("anthropic", {})
TEXT = anthropic_events([{"type": "text", "pieces": ["Hel", "lo!"]}])


async def _sent(req: Any, credential: Any) -> httpx.Request:
    seen: list[httpx.Request] = []
    async with streaming(TEXT, seen=seen) as client:
        await collect(ANTHROPIC, client, req, credential)
    return seen[0]


async def test_api_key_headers_and_url(make_key: Callable[..., str]) -> None:
    key = make_key()
    sent = await _sent(request(), cred(key))
    assert str(sent.url) == "https://api.anthropic.com/v1/messages"
    assert sent.method == "POST"
    assert sent.headers["x-api-key"] == key
    assert "authorization" not in sent.headers
    assert "anthropic-beta" not in sent.headers
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["user-agent"] == f"llm-sidecar/{sidecar.__version__}"


@pytest.mark.parametrize("kind", ["token", "oauth"])
async def test_bearer_kinds(make_key: Callable[..., str], kind: Any) -> None:
    token = make_key("sk-ant-oat01-")
    sent = await _sent(request(), cred(token, kind))
    assert sent.headers["authorization"] == f"Bearer {token}"
    assert sent.headers["anthropic-beta"] == "oauth-2025-04-20"
    assert "x-api-key" not in sent.headers
    assert sent.headers["user-agent"].startswith("llm-sidecar/")


async def test_body_minimal_and_full(make_key: Callable[..., str]) -> None:
    key = make_key()
    minimal = json.loads((await _sent(request(), cred(key))).content)
    assert minimal == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hello"}],
        "stream": True,
    }
    system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    tools = [{"name": "read", "description": "Read a file", "input_schema": {"type": "object"}}]
    full = json.loads(
        (
            await _sent(
                request(system=system, tools=tools, thinking_budget=2048, temperature=0.5),
                cred(key),
            )
        ).content
    )
    assert full["system"] == system  # cache_control passed through untouched
    assert full["tools"] == tools
    assert full["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert full["temperature"] == 0.5


async def test_base_url_override(make_key: Callable[..., str]) -> None:
    provider = get_provider("anthropic", {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9/proxy/"})
    seen: list[httpx.Request] = []
    async with streaming(TEXT, seen=seen) as client:
        await collect(provider, client, request(), cred(make_key()))
    assert str(seen[0].url) == "http://127.0.0.1:9/proxy/v1/messages"


async def test_text_stream(make_key: Callable[..., str]) -> None:
    async with streaming(TEXT) as client:
        deltas = await collect(ANTHROPIC, client, request(), cred(make_key()))
    texts = [d.text for d in deltas if isinstance(d, TextDelta)]
    assert texts == ["Hel", "lo!"]
    message = end_of(deltas).message
    assert message.content == [{"type": "text", "text": "Hello!"}]
    assert message.text == "Hello!"
    assert message.stop_reason == "end_turn"
    assert message.usage == Usage(input_tokens=10, output_tokens=5)


async def test_thinking_redacted_and_tools(make_key: Callable[..., str]) -> None:
    body = anthropic_events(
        [
            {"type": "thinking", "pieces": ["Let me ", "think."], "signature": "sig1"},
            {"type": "thinking", "pieces": ["More."], "signature": "sig2"},
            {"type": "redacted_thinking", "data": "opaque=="},
            {"type": "text", "pieces": ["Reading."]},
            {"type": "tool_use", "id": "toolu_1", "name": "read", "json": ['{"pa', 'th": "é.py"}']},
            {"type": "tool_use", "id": "toolu_2", "name": "noargs", "json": []},
            {"type": "tool_use", "id": "toolu_3", "name": "broken", "json": ['{"a": ']},
        ],
        stop_reason="tool_use",
    )
    async with streaming(body) as client:
        deltas = await collect(ANTHROPIC, client, request(), cred(make_key()))
    kinds = [type(d).__name__ for d in deltas if not isinstance(d, UsageDelta)]
    assert kinds[:4] == ["ThinkingDelta", "ThinkingDelta", "SignatureDelta", "ThinkingDelta"]
    assert SignatureDelta("sig2") in deltas
    assert ToolUseStart("toolu_1", "read") in deltas
    assert [d.json for d in deltas if isinstance(d, ToolInputDelta) and d.id == "toolu_1"] == [
        '{"pa',
        'th": "é.py"}',
    ]
    assert ToolUseStop("toolu_2") in deltas
    message = end_of(deltas).message
    assert message.stop_reason == "tool_use"
    assert message.content == [
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig1"},
        {"type": "thinking", "thinking": "More.", "signature": "sig2"},
        {"type": "redacted_thinking", "data": "opaque=="},
        {"type": "text", "text": "Reading."},
        {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {"path": "é.py"}},
        {"type": "tool_use", "id": "toolu_2", "name": "noargs", "input": {}},
        {"type": "tool_use", "id": "toolu_3", "name": "broken", "input": {"_raw": '{"a": '}},
    ]


async def test_usage_with_cache_tokens(make_key: Callable[..., str]) -> None:
    body = anthropic_events(
        [{"type": "text", "text": "ok"}],
        usage={
            "input_tokens": 12,
            "cache_creation_input_tokens": 300,
            "cache_read_input_tokens": 4000,
            "output_tokens": 1,
        },
        # Only the fields present overwrite: input and cache counts survive.
        delta_usage={"output_tokens": 42},
    )
    async with streaming(body) as client:
        deltas = await collect(ANTHROPIC, client, request(), cred(make_key()))
    usages = [d.usage for d in deltas if isinstance(d, UsageDelta)]
    expected = Usage(
        input_tokens=12, output_tokens=42, cache_read_tokens=4000, cache_write_tokens=300
    )
    assert usages == [attrs.evolve(expected, output_tokens=1), expected]
    assert end_of(deltas).message.usage == expected


@pytest.mark.parametrize(
    "reason", ["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"]
)
async def test_stop_reasons_pass_through(make_key: Callable[..., str], reason: str) -> None:
    async with streaming(
        anthropic_events([{"type": "text", "text": "x"}], stop_reason=reason)
    ) as c:
        deltas = await collect(ANTHROPIC, c, request(), cred(make_key()))
    assert end_of(deltas).message.stop_reason == reason


async def _failure(client: httpx.AsyncClient, key: str, kind: Any = "api_key") -> UpstreamFailure:
    with pytest.raises(UpstreamFailure) as info:
        await collect(ANTHROPIC, client, request(), cred(key, kind))
    failure = info.value
    assert key not in str(failure) and key not in repr(failure)
    assert key not in failure.failure.message
    return failure


def _error(kind: str, message: str) -> bytes:
    return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()


async def test_429_with_retry_after(make_key: Callable[..., str]) -> None:
    body = _error("rate_limit_error", "Number of requests has exceeded your rate limit")
    client = streaming(
        body, status=429, headers={"retry-after": "30"}, content_type="application/json"
    )
    before = time.time()
    async with client:
        failure = await _failure(client, make_key())
    after = time.time()
    f = failure.failure
    assert f.failure_class is FailureClass.RATE_LIMIT
    assert f.status == 429 and f.error_type == "rate_limit_error"
    assert f.retry_at is not None
    # Bracketed by the clock around the call, however long it took on a loaded machine.
    assert before + 29 <= f.retry_at <= after + 30.5
    assert failure.mid_stream is False and failure.retryable is False


async def test_429_with_anthropic_reset_header(make_key: Callable[..., str]) -> None:
    reset = "2099-01-01T00:00:00Z"
    client = streaming(
        _error("rate_limit_error", "rate limited"),
        status=429,
        headers={"anthropic-ratelimit-requests-reset": reset},
        content_type="application/json",
    )
    async with client:
        failure = await _failure(client, make_key())
    assert failure.failure.retry_at == 4070908800.0


@pytest.mark.parametrize(
    ("status", "kind", "message", "expected"),
    [
        (529, "overloaded_error", "Overloaded", FailureClass.RATE_LIMIT),
        (401, "authentication_error", "invalid x-api-key", FailureClass.AUTH),
        (
            400,
            "invalid_request_error",
            "This credential is only authorized for use with Claude Code and cannot be used "
            "for other API requests.",
            FailureClass.SCOPE,
        ),
        (400, "invalid_request_error", "max_tokens: Field required", FailureClass.REQUEST),
        (404, "not_found_error", "model: claude-nope", FailureClass.REQUEST),
    ],
)
async def test_http_errors_classified(
    make_key: Callable[..., str], status: int, kind: str, message: str, expected: FailureClass
) -> None:
    key = make_key("sk-ant-oat01-")
    async with streaming(
        _error(kind, message), status=status, content_type="application/json"
    ) as c:
        failure = await _failure(c, key, "oauth")
    assert failure.failure.failure_class is expected
    assert failure.failure.status == status
    assert failure.failure.message == message
    assert failure.mid_stream is False


async def test_echoed_key_is_redacted(make_key: Callable[..., str]) -> None:
    key = make_key()
    body = _error("authentication_error", f"invalid x-api-key {key}")
    async with streaming(body, status=401, content_type="application/json") as c:
        failure = await _failure(c, key)
    assert failure.failure.failure_class is FailureClass.AUTH


async def test_error_body_is_bounded(make_key: Callable[..., str]) -> None:
    body = b"<html>" + b"x" * 1_000_000
    async with streaming(body, status=502, content_type="text/html") as c:
        failure = await _failure(c, make_key())
    assert failure.failure.status == 502
    assert failure.failure.failure_class is FailureClass.REQUEST


async def test_mid_stream_error_event(make_key: Callable[..., str]) -> None:
    head = anthropic_events([{"type": "text", "pieces": ["partial"]}], stop=False)
    head = head.rsplit(b"event: message_delta", 1)[0]
    body = head + sse(
        "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    got: list[Any] = []
    async with streaming(body) as client:
        with pytest.raises(UpstreamFailure) as info:
            async for delta in ANTHROPIC.stream(client, request(), cred(make_key())):
                got.append(delta)
    assert TextDelta("partial") in got
    assert info.value.mid_stream is True
    assert info.value.failure.failure_class is FailureClass.RATE_LIMIT
    assert info.value.failure.error_type == "overloaded_error"


async def test_stream_without_message_stop(make_key: Callable[..., str]) -> None:
    body = anthropic_events([{"type": "text", "text": "cut"}], stop=False)
    async with streaming(body) as client:
        failure = await _failure(client, make_key())
    assert failure.failure.failure_class is FailureClass.REQUEST
    assert failure.failure.message == "stream ended early"
    assert failure.mid_stream is True and failure.retryable is True


async def test_dropped_connection_is_retryable(make_key: Callable[..., str]) -> None:
    class Dropping(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[no-untyped-def]
            yield TEXT[:200]
            raise httpx.RemoteProtocolError("peer closed connection")

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Dropping())

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        failure = await _failure(client, make_key())
    assert failure.failure.error_type == "network_error"
    assert failure.mid_stream is True and failure.retryable is True


async def test_connect_error_is_not_mid_stream(make_key: Callable[..., str]) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("All connection attempts failed")

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        failure = await _failure(client, make_key())
    assert failure.mid_stream is False and failure.retryable is True
    assert "ConnectError" in failure.failure.message


async def test_200_json_instead_of_stream(make_key: Callable[..., str]) -> None:
    async with streaming(b'{"id": "msg_1"}', content_type="application/json") as client:
        failure = await _failure(client, make_key())
    assert failure.failure.error_type == "unexpected_response"
    assert "application/json" in failure.failure.message


async def test_malformed_event(make_key: Callable[..., str]) -> None:
    body = sse("message_start", "{not json")
    async with streaming(body) as client:
        failure = await _failure(client, make_key())
    assert failure.failure.error_type == "malformed_stream"
    assert failure.mid_stream is True


async def test_unknown_events_and_blocks_are_skipped(make_key: Callable[..., str]) -> None:
    body = anthropic_events([{"type": "text", "text": "ok"}])
    extra = sse("brand_new_event", {"type": "brand_new_event"}) + sse(
        "content_block_start",
        {"type": "content_block_start", "index": 9, "content_block": {"type": "server_tool_use"}},
    )
    body = body.replace(b"event: ping", extra + b"event: ping", 1)
    async with streaming(body) as client:
        deltas = await collect(ANTHROPIC, client, request(), cred(make_key()))
    assert end_of(deltas).message.content == [{"type": "text", "text": "ok"}]


async def test_closing_early_closes_the_response(make_key: Callable[..., str]) -> None:
    closed: list[bool] = []

    class Tracked(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[no-untyped-def]
            yield TEXT

        async def aclose(self) -> None:
            closed.append(True)

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Tracked())

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        stream = ANTHROPIC.stream(client, request(), cred(make_key()))
        first = await anext(stream)
        assert isinstance(first, UsageDelta)
        await stream.aclose()
    assert closed == [True]


@pytest.mark.parametrize("offset", [1, 2, 3])
async def test_cut_inside_a_multibyte_character(make_key: Callable[..., str], offset: int) -> None:
    body = anthropic_events([{"type": "text", "pieces": ["a😀", "b中é"]}])
    at = body.index("😀".encode())
    cuts = [at + offset, body.index("中".encode()) + 1, body.index("é".encode()) + 1]
    async with streaming(body, cuts=cuts) as client:
        deltas = await collect(ANTHROPIC, client, request(), cred(make_key()))
    assert [d.text for d in deltas if isinstance(d, TextDelta)] == ["a😀", "b中é"]


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (500, "api_error", True),
        (503, "api_error", True),
        (400, "invalid_request_error", False),
        (404, "not_found_error", False),
        (429, "rate_limit_error", False),  # RATE_LIMIT: rotation's business, not a replay
    ],
)
async def test_transient_server_errors_are_retryable(
    make_key: Callable[..., str], status: int, kind: str, retryable: bool
) -> None:
    async with streaming(_error(kind, "x"), status=status, content_type="application/json") as c:
        failure = await _failure(c, make_key())
    assert failure.retryable is retryable


async def test_mid_stream_api_error_is_retryable(make_key: Callable[..., str]) -> None:
    body = sse("error", {"type": "error", "error": {"type": "api_error", "message": "Internal"}})
    async with streaming(body) as client:
        failure = await _failure(client, make_key())
    assert failure.failure.failure_class is FailureClass.REQUEST
    assert failure.mid_stream and failure.retryable
