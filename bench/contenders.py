"""The ways an editor could get a model's stream, all pointed at the same fake.

- ``direct``: httpx + httpx-sse in the editor's own process, the floor.
- ``sidecar``: llm-sidecar over stdio, read by :mod:`bench.lsp`.
- ``anthropic``: the official SDK's raw event stream (``messages.create(stream=True)``).
- ``litellm``: ``litellm.acompletion(stream=True)``, when LiteLLM is installed.

Each is an async context manager with ``stream(key, sink) -> start_ns``: it sends
one request, feeds every text delta into the sink, and returns when it ended.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from typing import Any

from bench.workload import KEYS, MODEL, SidecarProcess, TokenSink

__all__ = [
    "AnthropicSdk",
    "Contender",
    "Direct",
    "LiteLlm",
    "Sidecar",
    "have_litellm",
    "import_litellm",
]

perf_ns = time.perf_counter_ns


def have_litellm() -> bool:
    return importlib.util.find_spec("litellm") is not None


def import_litellm() -> Any:
    """LiteLLM, offline: the bundled cost map, no callbacks, no telemetry."""
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    litellm.callbacks = []
    litellm.success_callback = []
    litellm.failure_callback = []
    return litellm


class Contender:
    name = ""

    def __init__(self, url: str) -> None:
        self.url = url

    async def __aenter__(self) -> Contender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def stream(self, key: str, sink: TokenSink) -> int:
        raise NotImplementedError

    @property
    def server_pid(self) -> int | None:
        """The process that relays the stream, if not this one."""
        return None


class Direct(Contender):
    name = "httpx + httpx-sse"

    async def __aenter__(self) -> Direct:
        import httpx

        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        self.client = httpx.AsyncClient(timeout=300.0, limits=limits)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def stream(self, key: str, sink: TokenSink, tag: str = "go") -> int:
        from httpx_sse import aconnect_sse

        body = {
            "model": MODEL,
            "max_tokens": 4096,
            "stream": True,
            "messages": [{"role": "user", "content": tag}],
        }
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
        loads = json.loads
        start = perf_ns()
        url = f"{self.url}/v1/messages"
        async with aconnect_sse(self.client, "POST", url, json=body, headers=headers) as source:
            source.response.raise_for_status()
            async for event in source.aiter_sse():
                if event.event == "content_block_delta":
                    delta = loads(event.data)["delta"]
                    if delta["type"] == "text_delta":
                        sink.add(delta["text"], perf_ns())
        return start


class Sidecar(Contender):
    """llm-sidecar with a pool of one key (the key given to ``stream`` is ignored)."""

    name = "llm-sidecar"

    def __init__(self, url: str, keys: tuple[str, ...] = KEYS[:1], *, patches: str = "") -> None:
        super().__init__(url)
        self.process = SidecarProcess(url, keys, patches)
        if patches:
            self.name = f"llm-sidecar + {patches}"

    async def __aenter__(self) -> Sidecar:
        await self.process.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.process.__aexit__(*exc)

    async def stream(self, key: str, sink: TokenSink) -> int:
        start, _ = await self.process.stream(sink)
        return start

    @property
    def server_pid(self) -> int | None:
        return self.process.pid


class AnthropicSdk(Contender):
    name = "anthropic SDK"

    async def __aenter__(self) -> AnthropicSdk:
        self.clients: dict[str, Any] = {}
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self.clients.values():
            await client.close()

    async def stream(self, key: str, sink: TokenSink) -> int:
        import anthropic
        from anthropic.types import RawContentBlockDeltaEvent, TextDelta

        client = self.clients.get(key)
        if client is None:
            client = anthropic.AsyncAnthropic(api_key=key, base_url=self.url, max_retries=0)
            self.clients[key] = client
        start = perf_ns()
        events = await client.messages.create(
            model=MODEL,
            max_tokens=4096,
            messages=[{"role": "user", "content": "go"}],
            stream=True,
        )
        async for event in events:
            if isinstance(event, RawContentBlockDeltaEvent) and isinstance(event.delta, TextDelta):
                sink.add(event.delta.text, perf_ns())
        return start


class LiteLlm(Contender):
    name = "LiteLLM"

    async def __aenter__(self) -> LiteLlm:
        self.litellm = import_litellm()
        return self

    async def stream(self, key: str, sink: TokenSink) -> int:
        start = perf_ns()
        response = await self.litellm.acompletion(
            model=f"anthropic/{MODEL}",
            messages=[{"role": "user", "content": "go"}],
            max_tokens=4096,
            api_base=self.url,
            api_key=key,
            stream=True,
        )
        async for chunk in response:
            text = chunk.choices[0].delta.content
            if text:
                sink.add(text, perf_ns())
        return start
