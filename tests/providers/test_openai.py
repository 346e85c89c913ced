"""The OpenAI-compatible flavour: conversion, request building, chunk parsing, failures."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sidecar.providers import (
    TextDelta,
    ThinkingDelta,
    ToolInputDelta,
    ToolUseStart,
    ToolUseStop,
    UpstreamFailure,
    Usage,
    UsageDelta,
    get_provider,
)
from sidecar.providers._openai_convert import to_openai_messages, to_openai_tools
from sidecar.rotation.classify import FailureClass
from tests.providers.support import DONE, collect, cred, end_of, openai_chunk, request, streaming

OPENAI = get_provider("openai", {})
GROQ = get_provider("groq", {})
USAGE = openai_chunk(
    None,
    usage={
        "prompt_tokens": 1200,
        "completion_tokens": 30,
        "prompt_tokens_details": {"cached_tokens": 1000},
    },
)
TEXT = (
    openai_chunk({"role": "assistant", "content": ""})
    + openai_chunk({"content": "Hel"})
    + openai_chunk({"content": "lo!"})
    + openai_chunk({}, "stop")
    + USAGE
    + DONE
)


def oreq(**overrides: Any) -> Any:
    return request(**{"model": "gpt-4o", **overrides})


async def _sent(provider: Any, req: Any, credential: Any) -> httpx.Request:
    seen: list[httpx.Request] = []
    async with streaming(TEXT, seen=seen) as client:
        await collect(provider, client, req, credential)
    return seen[0]


# --- conversion -------------------------------------------------------------------


def test_convert_conversation_with_tools() -> None:
    system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Read a.py"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "Reading."},
                {"type": "tool_use", "id": "call_1", "name": "read", "input": {"path": "a.py"}},
                {"type": "tool_use", "id": "call_2", "name": "stat", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "print(1)"},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [{"type": "text", "text": "size 9"}],
                    "is_error": False,
                },
                {"type": "text", "text": "Now explain."},
            ],
        },
        {"role": "assistant", "content": "It prints 1."},
    ]
    assert to_openai_messages(system, messages) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Read a.py"},
        {
            "role": "assistant",
            "content": "Reading.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "read", "arguments": '{"path": "a.py"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "stat", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "print(1)"},
        {"role": "tool", "tool_call_id": "call_2", "content": "size 9"},
        {"role": "user", "content": "Now explain."},
        {"role": "assistant", "content": "It prints 1."},
    ]


def test_convert_images_and_tool_only_turns() -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AAA"},
    }
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "c", "name": "shot", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "c", "content": [image]}],
        },
    ]
    png = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}}
    assert to_openai_messages("sys", messages) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"}, png]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "shot", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c", "content": ""},
        {"role": "user", "content": [png]},
    ]


def test_convert_tools() -> None:
    tools = [
        {"name": "read", "description": "Read a file", "input_schema": {"type": "object"}},
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert to_openai_tools(tools) == [
        {
            "type": "function",
            "function": {
                "name": "read",
                "description": "Read a file",
                "parameters": {"type": "object"},
            },
        },
        {
            "type": "function",
            "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
        },
    ]


# --- request building -------------------------------------------------------------


async def test_openai_request(make_key: Callable[..., str]) -> None:
    key = make_key("sk-proj-")
    tools = [{"name": "read", "input_schema": {"type": "object"}}]
    sent = await _sent(
        OPENAI, oreq(system="Be brief.", tools=tools, temperature=0.2), cred(key, provider="openai")
    )
    assert str(sent.url) == "https://api.openai.com/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {key}"
    assert sent.headers["user-agent"].startswith("llm-sidecar/")
    body = json.loads(sent.content)
    assert body == {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": 64,
        "tools": [
            {"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}
        ],
        "temperature": 0.2,
    }


async def test_compatible_host_uses_max_tokens_and_env_base(make_key: Callable[..., str]) -> None:
    assert "max_tokens" in json.loads((await _sent(GROQ, oreq(), cred(make_key("gsk_")))).content)
    provider = get_provider("groq", {"GROQ_BASE_URL": "http://127.0.0.1:1/openai/v1/"})
    sent = await _sent(provider, oreq(), cred(make_key("gsk_")))
    assert str(sent.url) == "http://127.0.0.1:1/openai/v1/chat/completions"
    sent = await _sent(
        get_provider("openai", {"OPENAI_BASE_URL": "https://h/v1"}), oreq(), cred("k" * 20)
    )
    assert str(sent.url) == "https://h/v1/chat/completions"


async def test_azure_request(make_key: Callable[..., str]) -> None:
    env = {
        "AZURE_OPENAI_RESOURCE_NAME": "acme",
        "AZURE_OPENAI_API_VERSION": "2025-01-01-preview",
        "AZURE_OPENAI_DEPLOYMENT_MAP": "gpt-4o=prod-4o, o3 = reasoning ;",
    }
    azure = get_provider("azure-openai", env)
    key = make_key("az-")
    sent = await _sent(azure, oreq(), cred(key, provider="azure-openai"))
    assert str(sent.url) == (
        "https://acme.openai.azure.com/openai/deployments/prod-4o/chat/completions"
        "?api-version=2025-01-01-preview"
    )
    assert sent.headers["api-key"] == key
    assert "authorization" not in sent.headers
    assert "max_completion_tokens" in json.loads(sent.content)
    # An unmapped model is its own deployment; an explicit base URL wins over the resource.
    env2 = {"AZURE_OPENAI_BASE_URL": "http://127.0.0.1:5/openai/", **env}
    sent = await _sent(get_provider("azure-openai", env2), oreq(model="gpt-4.1"), cred(key))
    assert str(sent.url) == (
        "http://127.0.0.1:5/openai/deployments/gpt-4.1/chat/completions?api-version=2025-01-01-preview"
    )
    # An Entra ID token goes as a bearer token.
    sent = await _sent(azure, oreq(), cred(key, "token"))
    assert sent.headers["authorization"] == f"Bearer {key}"


def test_azure_needs_an_endpoint_and_unknown_names_fail() -> None:
    from sidecar.providers import ProviderConfigError

    with pytest.raises(ProviderConfigError, match="AZURE_OPENAI_BASE_URL"):
        get_provider("azure-openai", {})
    assert get_provider("azure-openai", {"AZURE_OPENAI_RESOURCE_NAME": "x"}).name == "azure-openai"
    with pytest.raises(KeyError):
        get_provider("nope", {})


# --- parsing -------------------------------------------------------------------------


async def test_text_stream_and_usage(make_key: Callable[..., str]) -> None:
    async with streaming(TEXT) as client:
        deltas = await collect(OPENAI, client, oreq(), cred(make_key("sk-proj-")))
    assert [d.text for d in deltas if isinstance(d, TextDelta)] == ["Hel", "lo!"]
    usage = Usage(input_tokens=200, output_tokens=30, cache_read_tokens=1000)
    assert [d for d in deltas if isinstance(d, UsageDelta)] == [UsageDelta(usage)]
    message = end_of(deltas).message
    assert message.content == [{"type": "text", "text": "Hello!"}]
    assert message.stop_reason == "end_turn"
    assert message.usage == usage


async def test_reasoning_and_tool_calls(make_key: Callable[..., str]) -> None:
    body = (
        openai_chunk({"reasoning_content": "Think"})
        + openai_chunk({"reasoning": "ing."})
        + openai_chunk({"content": "Let me look."})
        + openai_chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "read", "arguments": ""},
                    }
                ]
            }
        )
        + openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"path":'}}]})
        # A second call whose name comes after its first argument fragment.
        + openai_chunk(
            {"tool_calls": [{"index": 1, "id": "call_b", "function": {"arguments": '{"q"'}}]}
        )
        + openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "ü.py"}'}}]})
        + openai_chunk(
            {"tool_calls": [{"index": 1, "function": {"name": "grep", "arguments": ': "x"}'}}]}
        )
        + openai_chunk({}, "tool_calls")
        + DONE
    )
    async with streaming(body) as client:
        deltas = await collect(OPENAI, client, oreq(), cred(make_key("sk-proj-")))
    assert [d.text for d in deltas if isinstance(d, ThinkingDelta)] == ["Think", "ing."]
    assert deltas.index(ToolUseStart("call_a", "read")) < deltas.index(
        ToolUseStart("call_b", "grep")
    )
    b_start = deltas.index(ToolUseStart("call_b", "grep"))
    assert deltas[b_start + 1] == ToolInputDelta("call_b", '{"q"')
    assert deltas[-3:-1] == [ToolUseStop("call_a"), ToolUseStop("call_b")]
    message = end_of(deltas).message
    assert message.stop_reason == "tool_use"
    assert message.content == [
        {"type": "thinking", "thinking": "Thinking.", "signature": ""},
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "call_a", "name": "read", "input": {"path": "ü.py"}},
        {"type": "tool_use", "id": "call_b", "name": "grep", "input": {"q": "x"}},
    ]


async def test_content_as_a_list_of_parts_streams_as_thinking_and_text(
    make_key: Callable[..., str],
) -> None:
    # Mistral's reasoning models (Magistral; Mistral's API spec: ThinkChunk holds a list
    # of TextChunks, a TextChunk's "type" may be left out; ReferenceChunk has no text).
    body = (
        openai_chunk({"role": "assistant", "content": ""})
        + openai_chunk(
            {"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "Hm, "}]}]}
        )
        + openai_chunk(
            {
                "content": [
                    {"type": "thinking", "thinking": [{"text": "six times seven."}], "closed": True}
                ]
            }
        )
        + openai_chunk({"content": [{"type": "text", "text": "It is "}]})
        + openai_chunk({"content": [{"type": "reference", "reference_ids": [1]}, {"text": "42"}]})
        + openai_chunk({"content": "."})  # and plain strings again, in the same stream
        + openai_chunk({}, "stop")
        + DONE
    )
    async with streaming(body) as client:
        deltas = await collect(GROQ, client, oreq(), cred(make_key("gsk_")))
    assert [d.text for d in deltas if isinstance(d, ThinkingDelta)] == ["Hm, ", "six times seven."]
    assert [d.text for d in deltas if isinstance(d, TextDelta)] == ["It is ", "42", "."]
    assert end_of(deltas).message.content == [
        {"type": "thinking", "thinking": "Hm, six times seven.", "signature": ""},
        {"type": "text", "text": "It is 42."},
    ]


async def test_an_empty_answer_is_logged_as_a_warning(
    make_key: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    body = openai_chunk({"role": "assistant", "content": ""}) + openai_chunk({}, "stop") + DONE
    async with streaming(body) as client:
        deltas = await collect(OPENAI, client, oreq(), cred(make_key("sk-proj-")))
    assert end_of(deltas).message.content == []
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "gpt-4o with no text, thinking or tool call" in warnings[0]
    assert "stop reason end_turn" in warnings[0]

    caplog.clear()
    async with streaming(TEXT) as client:
        await collect(OPENAI, client, oreq(), cred(make_key("sk-proj-")))
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


@pytest.mark.parametrize(
    ("finish", "tools", "expected"),
    [
        ("stop", False, "end_turn"),
        ("length", False, "max_tokens"),
        ("tool_calls", True, "tool_use"),
        ("content_filter", False, "refusal"),
        ("stop", True, "tool_use"),  # hosts that say "stop" after tool calls
        ("something_new", False, "end_turn"),
    ],
)
async def test_finish_reason_mapping(
    make_key: Callable[..., str], finish: str, tools: bool, expected: str
) -> None:
    call = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}}
    body = (
        (openai_chunk({"tool_calls": [call]}) if tools else openai_chunk({"content": "x"}))
        + openai_chunk({}, finish)
        + DONE
    )
    async with streaming(body) as client:
        deltas = await collect(OPENAI, client, oreq(), cred(make_key("sk-proj-")))
    assert end_of(deltas).message.stop_reason == expected


async def test_missing_done_after_finish_is_accepted(make_key: Callable[..., str]) -> None:
    body = openai_chunk({"content": "ok"}) + openai_chunk({}, "stop")
    async with streaming(body) as client:
        deltas = await collect(GROQ, client, oreq(), cred(make_key("gsk_")))
    assert end_of(deltas).message.text == "ok"


async def test_stream_cut_before_finish(make_key: Callable[..., str]) -> None:
    body = openai_chunk({"content": "partial"})
    async with streaming(body) as client:
        with pytest.raises(UpstreamFailure) as info:
            await collect(GROQ, client, oreq(), cred(make_key("gsk_")))
    assert info.value.failure.message == "stream ended early"
    assert info.value.mid_stream and info.value.retryable


async def test_mid_stream_error_chunk(make_key: Callable[..., str]) -> None:
    error = {"error": {"message": "The engine is currently overloaded", "type": "server_error"}}
    body = openai_chunk({"content": "par"}) + b"data: " + json.dumps(error).encode() + b"\n\n"
    async with streaming(body) as client:
        with pytest.raises(UpstreamFailure) as info:
            await collect(OPENAI, client, oreq(), cred(make_key("sk-proj-")))
    assert info.value.mid_stream is True
    assert info.value.failure.failure_class is FailureClass.RATE_LIMIT  # "overloaded"


@pytest.mark.parametrize(
    ("status", "error", "headers", "expected", "billing"),
    [
        (
            429,
            {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"},
            {"x-ratelimit-reset-requests": "6m0s"},
            FailureClass.RATE_LIMIT,
            False,
        ),
        (
            429,
            {"message": "You exceeded your current quota", "type": "insufficient_quota"},
            {},
            FailureClass.RATE_LIMIT,
            True,
        ),
        (
            401,
            {"message": "Incorrect API key provided", "code": "invalid_api_key"},
            {},
            FailureClass.AUTH,
            False,
        ),
        (
            400,
            {"message": "Invalid 'messages'", "type": "invalid_request_error"},
            {},
            FailureClass.REQUEST,
            False,
        ),
    ],
)
async def test_http_errors(
    make_key: Callable[..., str],
    status: int,
    error: dict[str, Any],
    headers: dict[str, str],
    expected: FailureClass,
    billing: bool,
) -> None:
    key = make_key("sk-proj-")
    body = json.dumps({"error": error}).encode()
    async with streaming(
        body, status=status, headers=headers, content_type="application/json"
    ) as c:
        before = time.time()
        with pytest.raises(UpstreamFailure) as info:
            await collect(OPENAI, c, oreq(), cred(key))
        after = time.time()
    failure = info.value.failure
    assert failure.failure_class is expected and failure.billing is billing
    assert failure.status == status and not info.value.mid_stream
    if headers:  # bracketed by the clock around the call, however long it took
        assert failure.retry_at is not None and before + 359 <= failure.retry_at <= after + 360.5
    assert key not in str(info.value)
