"""The goodput benchmark's contenders: each sends one request as its users would.

- :class:`Floor`: one key, the official ``anthropic`` SDK, its default two retries.
- :class:`LiteLlmRouter`: LiteLLM's Router with the K keys as deployments of one model.
- :class:`SidecarPool`: S stdio sidecars on one home, each client an editor of one; one
  contender per pool policy (``sticky``, ``primary``).
- :class:`GatewayPool`: ``llm-sidecar gateway`` on the same home, each client a tool that
  speaks the Anthropic Messages API over HTTP (httpx + httpx-sse, no retries of its own:
  what the gateway answers is what the user sees).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.contenders import import_litellm
from bench.lsp import REPO_ROOT
from bench.workload import MODEL, SidecarProcess, TokenSink, sidecar_env

__all__ = [
    "REQUEST_TIMEOUT",
    "Contender",
    "Floor",
    "GatewayError",
    "GatewayPool",
    "GatewayProcess",
    "LiteLlmRouter",
    "SidecarPool",
    "limits",
]

REQUESTS = 4  # per key per period (``Sizes.goodput_period``): 2 requests/s per key at 2 s
INPUT_TOKENS = 12_000  # per key per period, ~1.5× the mean prompt × REQUESTS
OUTPUT_TOKENS = 2_400  # per key per period, ~2× the answers × REQUESTS
REQUEST_TIMEOUT = 60.0  # only so that a hung request cannot hang the benchmark
ANTHROPIC_VERSION = "2023-06-01"


def limits(period: float) -> dict[str, Any]:
    """Every key's buckets, as the fake's ``ratelimit`` command takes them."""
    return {
        "requests": REQUESTS,
        "input_tokens": INPUT_TOKENS,
        "output_tokens": OUTPUT_TOKENS,
        "period": period,
        "refill": "continuous",
    }


class Contender:
    name = ""

    async def reset(self) -> None:
        """Before each run: nothing remembered from the last one."""

    async def ask(self, client: int, tag: str, prompt: str, sink: TokenSink) -> None:
        """One request; returns when the answer is whole, raises on a user-visible error."""
        raise NotImplementedError


class Floor(Contender):
    name = "one key (anthropic SDK)"

    def __init__(self, url: str, key: str) -> None:
        import anthropic

        self.client = anthropic.AsyncAnthropic(
            api_key=key, base_url=url, max_retries=2, timeout=REQUEST_TIMEOUT
        )

    async def ask(self, client: int, tag: str, prompt: str, sink: TokenSink) -> None:
        from anthropic.types import RawContentBlockDeltaEvent, TextDelta

        events = await self.client.messages.create(
            model=MODEL,
            max_tokens=1024,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
        )
        async for event in events:
            if isinstance(event, RawContentBlockDeltaEvent) and isinstance(event.delta, TextDelta):
                sink.add(event.delta.text, 0)

    async def close(self) -> None:
        await self.client.close()


class LiteLlmRouter(Contender):
    def __init__(self, url: str, keys: Sequence[str], strategy: str, period: float) -> None:
        self.name = f"LiteLLM Router ({strategy})"
        self.litellm = import_litellm()
        per_minute = 60 / period  # LiteLLM counts per real minute
        self.deployments = [
            {
                "model_name": "claude",
                "litellm_params": {
                    "model": f"anthropic/{MODEL}",
                    "api_key": key,
                    "api_base": url,
                    "rpm": round(REQUESTS * per_minute),
                    "tpm": round((INPUT_TOKENS + OUTPUT_TOKENS) * per_minute),
                },
            }
            for key in keys
        ]
        self.strategy = strategy
        self.router: Any = None

    async def reset(self) -> None:
        # A new Router: its cooldowns and usage counts start empty.
        self.router = self.litellm.Router(
            model_list=self.deployments,
            routing_strategy=self.strategy,
            num_retries=2,
            retry_after=0,
        )

    async def ask(self, client: int, tag: str, prompt: str, sink: TokenSink) -> None:
        response = await self.router.acompletion(
            model="claude",
            messages=[{"role": "user", "content": prompt}],
            max_tokens=1024,
            stream=True,
        )
        async for chunk in response:
            text = chunk.choices[0].delta.content
            if text:
                sink.add(text, 0)


async def reset_pool(sidecar: SidecarProcess, policy: str) -> None:
    """Cooldowns and windows cleared, and ``policy`` in force: the contenders share one
    home, so each sets its own before its run."""
    await sidecar.request("sidecar/keyReset", {"provider": "anthropic"})
    await sidecar.request("sidecar/policy", {"provider": "anthropic", "policy": policy})


class SidecarPool(Contender):
    def __init__(self, sidecars: Sequence[SidecarProcess], policy: str = "sticky") -> None:
        self.sidecars = sidecars
        self.policy = policy
        self.name = f"llm-sidecar {policy} ({len(sidecars)} processes, one home)"

    async def reset(self) -> None:
        await reset_pool(self.sidecars[0], self.policy)

    async def ask(self, client: int, tag: str, prompt: str, sink: TokenSink) -> None:
        sidecar = self.sidecars[client % len(self.sidecars)]
        assert sidecar.proc is not None
        params = {
            "provider": "anthropic",
            "model": MODEL,
            "maxTokens": 1024,
            "streamId": tag,
            "messages": [{"role": "user", "content": prompt}],
        }
        sidecar.sinks[tag] = sink
        try:
            await sidecar.proc.request("sidecar/stream", params, REQUEST_TIMEOUT)
        finally:
            del sidecar.sinks[tag]


# -- the gateway -------------------------------------------------------------------------------


class GatewayError(Exception):
    """What a tool behind the gateway shows its user: a non-200 answer or an error event."""

    def __init__(self, message: str, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # the answer's ``retry-after``, if it had one


def _free_port() -> int:
    # Bound and closed at once: the gateway binds it a moment later (loopback only).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayProcess:
    """``python -m sidecar gateway`` on a free loopback port, on ``home``, with the keys.

    Its token is read as a user reads it, from ``llm-sidecar gateway env``; its
    one-line-per-request log goes to a file, so that a full pipe never stalls it.
    """

    def __init__(self, fake_url: str, keys: tuple[str, ...], home: Path) -> None:
        self.env = sidecar_env(home, fake_url, keys)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = ""
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __aexit__)
        self._proc: asyncio.subprocess.Process | None = None

    def _cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "sidecar", "gateway", *args, "--port", str(self.port)]

    async def __aenter__(self) -> GatewayProcess:
        # The token first (created on first use), then the server that will read it.
        said = subprocess.run(
            [*self._cli("env")],
            env=self.env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for line in said.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            if name == "LLM_SIDECAR_GATEWAY_TOKEN":
                self.token = value.strip("'")
        if not self.token:
            raise RuntimeError("llm-sidecar gateway env printed no token")
        self._proc = await asyncio.create_subprocess_exec(
            *self._cli(),
            env=self.env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        await self._wait_listening()
        return self

    async def _wait_listening(self) -> None:
        assert self._proc is not None
        for _ in range(300):  # at most ~30 s: only so that a broken gateway cannot hang us
            if self._proc.returncode is not None:
                self._log.seek(0)
                tail = self._log.read().decode(errors="replace").strip().splitlines()[-1:]
                raise RuntimeError(f"llm-sidecar gateway exited: {''.join(tail)}")
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                await writer.wait_closed()
                return
            await asyncio.sleep(0.1)
        raise RuntimeError("llm-sidecar gateway did not listen within 30 s")

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()  # SIGTERM: it lets streams end and saves usage
            try:
                await asyncio.wait_for(self._proc.wait(), 15)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        self._log.close()


class GatewayPool(Contender):
    """N tools on the gateway: one HTTP client each, as separate programs would have."""

    def __init__(self, gateway: GatewayProcess, clients: int, reset_via: SidecarProcess) -> None:
        import httpx

        self.name = "llm-sidecar gateway sticky (HTTP)"
        self.gateway = gateway
        # The gateway shares the home's state: a sidecar on it clears the cooldowns.
        self.reset_via = reset_via
        self.clients = [
            httpx.AsyncClient(
                timeout=REQUEST_TIMEOUT,
                trust_env=False,  # loopback only, whatever proxy the shell names
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            )
            for _ in range(clients)
        ]

    async def reset(self) -> None:
        await reset_pool(self.reset_via, "sticky")

    async def ask(self, client: int, tag: str, prompt: str, sink: TokenSink) -> None:
        from httpx_sse import aconnect_sse

        body = {
            "model": MODEL,
            "max_tokens": 1024,
            "stream": True,
            "messages": [{"role": "user", "content": prompt}],
        }
        headers = {"x-api-key": self.gateway.token, "anthropic-version": ANTHROPIC_VERSION}
        url = f"{self.gateway.url}/anthropic/v1/messages"
        http = self.clients[client % len(self.clients)]
        async with aconnect_sse(http, "POST", url, json=body, headers=headers) as source:
            if source.response.status_code != 200:
                await source.response.aread()
                raise GatewayError(
                    f"HTTP {source.response.status_code}",
                    source.response.headers.get("retry-after"),
                )
            async for event in source.aiter_sse():
                if event.event == "content_block_delta":
                    delta = json.loads(event.data)["delta"]
                    if delta["type"] == "text_delta":
                        sink.add(delta["text"], 0)
                elif event.event == "error":
                    raise GatewayError(event.data[:200])

    async def close(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients))
