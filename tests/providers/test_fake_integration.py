"""The provider layer against sidecar.fake: real sockets, chunked SSE split anywhere."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from sidecar.fake import (
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
from sidecar.providers import TextDelta, UpstreamFailure, get_provider
from sidecar.providers import Usage as OurUsage
from sidecar.rotation.classify import FailureClass
from tests.providers.support import collect, cred, end_of, request

KEY = "sk-ant-api03-providers-fake-key-0001"
OAT = "sk-ant-oat01-providers-fake-token-0002"
OPENAI_KEY = "sk-proj-providers-fake-key-00000003"
UNICODE = "Grüße 🎉🚀 東京 漢字かな "


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(keys=[KEY, OAT, OPENAI_KEY]) as provider:
        yield provider


@pytest.fixture
async def client(fake: FakeProvider) -> AsyncIterator[httpx.AsyncClient]:
    fake.reset()
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


def anthropic(fake: FakeProvider) -> Any:
    return get_provider("anthropic", {"ANTHROPIC_BASE_URL": fake.url})


async def test_anthropic_full_message(fake: FakeProvider, client: httpx.AsyncClient) -> None:
    reply = Reply(
        [
            Thinking("Pondering " * 5, signature="sig-xyz"),
            RedactedThinking("cmVkYWN0ZWQ="),
            Text(UNICODE * 4),
            ToolUse("toolu_1", "read", {"path": "src/ü.py", "lines": [1, 2]}),
        ],
        usage=Usage(input=20, output=50, cache_read=1000, cache_write=300),
        split="random",
        seed=7,
        chunk=3,
    )
    fake.script(OAT, [reply])
    deltas = await collect(anthropic(fake), client, request(), cred(OAT, "oauth"))
    message = end_of(deltas).message
    assert message.content == [
        {"type": "thinking", "thinking": "Pondering " * 5, "signature": "sig-xyz"},
        {"type": "redacted_thinking", "data": "cmVkYWN0ZWQ="},
        {"type": "text", "text": UNICODE * 4},
        {
            "type": "tool_use",
            "id": "toolu_1",
            "name": "read",
            "input": {"path": "src/ü.py", "lines": [1, 2]},
        },
    ]
    assert message.stop_reason == "tool_use"
    assert message.usage == OurUsage(20, 50, 1000, 300)
    assert len([d for d in deltas if isinstance(d, TextDelta)]) > 3
    recorded = fake.requests[-1]
    assert recorded.path == "/v1/messages"
    assert recorded.headers["user-agent"].startswith("llm-sidecar/")
    assert recorded.headers["anthropic-beta"] == "oauth-2025-04-20"
    assert recorded.body["stream"] is True


@pytest.mark.parametrize(
    ("step", "expected", "status"),
    [
        (RateLimited(retry_after=30), FailureClass.RATE_LIMIT, 429),
        (Overloaded(), FailureClass.RATE_LIMIT, 529),
        (InvalidKey(), FailureClass.AUTH, 401),
        (ScopeRefused(), FailureClass.SCOPE, 400),
        (ScopeRefused(status=403), FailureClass.SCOPE, 403),
        (ProxyErrorPage(), FailureClass.REQUEST, 502),
    ],
)
async def test_anthropic_http_failures(
    fake: FakeProvider, client: httpx.AsyncClient, step: Any, expected: FailureClass, status: int
) -> None:
    fake.script(KEY, [step])
    before = time.time()
    with pytest.raises(UpstreamFailure) as info:
        await collect(anthropic(fake), client, request(), cred(KEY))
    after = time.time()
    failure = info.value.failure
    assert (failure.failure_class, failure.status) == (expected, status)
    assert info.value.mid_stream is False
    if status == 429:  # bracketed by the clock around the call, however long it took
        assert failure.retry_at is not None and before + 29 <= failure.retry_at <= after + 31


async def test_unknown_key_is_auth(fake: FakeProvider, client: httpx.AsyncClient) -> None:
    stranger = "sk-ant-api03-never-scripted-key-9999"
    with pytest.raises(UpstreamFailure) as info:
        await collect(anthropic(fake), client, request(), cred(stranger))
    assert info.value.failure.failure_class is FailureClass.AUTH
    assert stranger not in str(info.value)


async def test_anthropic_mid_stream_error_and_drop(
    fake: FakeProvider, client: httpx.AsyncClient
) -> None:
    fake.script(
        KEY,
        [
            Reply([Text(UNICODE * 10)], chunk=4, error_after=6),
            Reply([Text(UNICODE * 10)], chunk=4, drop_after=6, split=7),
        ],
    )
    provider = anthropic(fake)
    with pytest.raises(UpstreamFailure) as error:
        await collect(provider, client, request(), cred(KEY))
    assert error.value.mid_stream and error.value.failure.error_type == "overloaded_error"
    assert error.value.failure.failure_class is FailureClass.RATE_LIMIT
    with pytest.raises(UpstreamFailure) as drop:
        await collect(provider, client, request(), cred(KEY))
    assert drop.value.mid_stream and drop.value.retryable
    assert drop.value.failure.failure_class is FailureClass.REQUEST


async def test_openai_against_fake(fake: FakeProvider, client: httpx.AsyncClient) -> None:
    fake.script(
        OPENAI_KEY,
        [
            Reply(
                [Thinking("hmm"), Text(UNICODE), ToolUse("call_1", "grep", {"q": "東京"})],
                usage=Usage(input=10, output=7, cache_read=100),
                split="random",
                seed=3,
                chunk=2,
            )
        ],
    )
    provider = get_provider("openai", {"OPENAI_BASE_URL": fake.url + "/v1"})
    deltas = await collect(
        provider, client, request(model="gpt-4o"), cred(OPENAI_KEY, provider="openai")
    )
    message = end_of(deltas).message
    assert message.content == [
        {"type": "thinking", "thinking": "hmm", "signature": ""},
        {"type": "text", "text": UNICODE},
        {"type": "tool_use", "id": "call_1", "name": "grep", "input": {"q": "東京"}},
    ]
    assert message.stop_reason == "tool_use"
    assert message.usage == OurUsage(input_tokens=10, output_tokens=7, cache_read_tokens=100)
    assert fake.requests[-1].path == "/v1/chat/completions"


async def test_openai_rate_limit_headers(fake: FakeProvider, client: httpx.AsyncClient) -> None:
    fake.script(OPENAI_KEY, [RateLimited(retry_after=None, reset_in=90)])
    provider = get_provider("openai", {"OPENAI_BASE_URL": fake.url + "/v1"})
    before = time.time()
    with pytest.raises(UpstreamFailure) as info:
        await collect(provider, client, request(model="gpt-4o"), cred(OPENAI_KEY))
    after = time.time()
    failure = info.value.failure
    assert failure.failure_class is FailureClass.RATE_LIMIT
    # Bracketed by the clock around the call, however long it took on a loaded machine.
    assert failure.retry_at is not None and before + 89 <= failure.retry_at <= after + 91


async def test_azure_against_fake(fake: FakeProvider, client: httpx.AsyncClient) -> None:
    env = {"AZURE_OPENAI_BASE_URL": fake.url, "AZURE_OPENAI_DEPLOYMENT_MAP": "gpt-4o=prod"}
    provider = get_provider("azure-openai", env)
    deltas = await collect(provider, client, request(model="gpt-4o"), cred(OPENAI_KEY))
    assert end_of(deltas).message.text
    recorded = fake.requests[-1]
    assert recorded.path.startswith("/openai/deployments/prod/chat/completions")
    assert recorded.key is not None and OPENAI_KEY not in recorded.key


class _CountingConnects(httpx.AsyncBaseTransport):
    """httpx's transport, counting the TCP connections it opens (httpcore's trace)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.connects = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async def trace(name: str, info: Any) -> None:
            if name == "connection.connect_tcp.complete":
                self.connects += 1

        request.extensions["trace"] = trace
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("flavour", ["anthropic", "openai"])
async def test_the_next_request_reuses_the_connection(fake: FakeProvider, flavour: str) -> None:
    # A response left before its body ended takes its connection along: every request
    # would pay a new TCP (with a real provider, TLS) handshake before its first delta.
    fake.reset()
    key = KEY if flavour == "anthropic" else OPENAI_KEY
    fake.script(key, [], Reply([Text("Hello there, twice.")]))
    env = {"ANTHROPIC_BASE_URL": fake.url, "OPENAI_BASE_URL": fake.url + "/v1"}
    provider = get_provider(flavour, env)
    transport = _CountingConnects()
    async with httpx.AsyncClient(transport=transport, timeout=10) as client:
        for _ in range(3):
            model = {"anthropic": "claude-sonnet-4-5", "openai": "gpt-4o"}[flavour]
            deltas = await collect(
                provider, client, request(model=model), cred(key, provider=flavour)
            )
            assert end_of(deltas).message.text == "Hello there, twice."
    assert transport.connects == 1
