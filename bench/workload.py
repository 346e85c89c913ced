"""What every benchmark streams, and how what arrives is counted and checked.

Each provider delta is one fixed-width token, ``t00000 ``, ``t00001 ``, … so that
however the sidecar merges adjacent deltas, the number of provider deltas
delivered is the number of characters received divided by the token width, and
the exact text received proves that nothing was lost, repeated or reordered.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

from bench.fakehost import Record
from bench.lsp import LspProcess

__all__ = [
    "KEYS",
    "MODEL",
    "WIDTH",
    "SidecarProcess",
    "TokenSink",
    "delta_write_ns",
    "enter_all",
    "failover_streams",
    "reply_step",
    "stream_params",
    "tokens",
]

WIDTH = 7  # len("t00000 ")
MAX_TOKENS = 100_000
MODEL = "claude-sonnet-4-6"
# Fake keys, known only to the fake: never real credentials.
KEYS = ("sk-ant-api03-bench-key-one-00000000000001", "sk-ant-api03-bench-key-two-00000000000002")
# Events before the first text delta: message_start, ping, content_block_start.
FIRST_DELTA_EVENT = 3


T = TypeVar("T")


async def enter_all(
    stack: AsyncExitStack, managers: Sequence[AbstractAsyncContextManager[T]]
) -> list[T]:
    """Enter the context managers at once (sidecars spawn in parallel), in ``stack``."""
    return list(await asyncio.gather(*(stack.enter_async_context(m) for m in managers)))


def tokens(n: int) -> str:
    if n > MAX_TOKENS:
        raise ValueError(f"at most {MAX_TOKENS} tokens")
    return "".join(f"t{i:05d} " for i in range(n))


def reply_step(n: int, interval: float = 0.0) -> dict[str, Any]:
    """The fake's JSON step for a reply of ``n`` tokens, one per SSE event."""
    return {
        "kind": "reply",
        "content": [{"type": "text", "text": tokens(n)}],
        "chunk": WIDTH,
        "interval": interval,
        "ping_every": 0,  # no pings between deltas: delta i is event 3 + i
        "usage": {"input": 10, "output": n},
    }


def delta_write_ns(record: Record, n: int) -> list[int]:
    """When the fake handed each of the ``n`` text deltas to the socket."""
    stamps: list[int] = record["write_ns"]
    first = FIRST_DELTA_EVENT
    out = stamps[first : first + n]
    if len(out) != n:
        raise ValueError(f"request {record['no']}: {len(stamps)} stamps for {n} deltas")
    return out


def stream_params(stream_id: str) -> dict[str, Any]:
    return {
        "provider": "anthropic",
        "model": MODEL,
        "maxTokens": 4096,
        "streamId": stream_id,
        "messages": [{"role": "user", "content": stream_id}],
    }


class TokenSink:
    """Counts the tokens of one stream as text arrives, optionally per-token arrival
    times (``perf_counter_ns``), and keeps the text to check it exactly."""

    __slots__ = ("arrivals", "chars", "first_ns", "last_ns", "parts", "restarts")

    def __init__(self, n: int = 0, *, timed: bool = False) -> None:
        self.chars = 0
        self.parts: list[str] = []
        self.arrivals: list[int] | None = [0] * n if timed else None
        self.first_ns = 0
        self.last_ns = 0
        self.restarts = 0

    def add(self, text: str, now: int) -> None:
        before = self.chars // WIDTH
        self.chars += len(text)
        self.parts.append(text)
        if not self.first_ns:
            self.first_ns = now
        self.last_ns = now
        arrivals = self.arrivals
        if arrivals is not None:
            for i in range(before, min(self.chars // WIDTH, len(arrivals))):
                arrivals[i] = now

    def restart(self) -> None:
        """A ``restart`` delta: what came so far is void."""
        self.restarts += 1
        self.chars = 0
        self.parts.clear()

    @property
    def count(self) -> int:
        return self.chars // WIDTH

    def exact(self, n: int) -> bool:
        """The text is exactly tokens 0..n-1, in order, each once."""
        return "".join(self.parts) == tokens(n)


class SidecarProcess:
    """``python -m sidecar`` over stdio in a home of its own, with the fake's keys.

    Deltas are routed by ``streamId`` to the :class:`TokenSink` registered for it.
    """

    def __init__(
        self,
        fake_url: str,
        keys: tuple[str, ...] = KEYS[:1],
        patches: str = "",
        home: Path | None = None,
    ) -> None:
        """``home``: shared with other sidecars (default: a home of its own)."""
        self.fake_url = fake_url
        self.keys = keys
        # With patches: bench.variants, the sidecar with prototyped changes applied.
        module = ["-m", "bench.variants", patches] if patches else ["-m", "sidecar"]
        self.argv = LspProcess.python(*module)
        self.sinks: dict[str, TokenSink] = {}
        self.proc: LspProcess | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="llm-sidecar-bench-")
        self.home = home or Path(self._tmp.name) / "home"
        self._next = 0

    def env(self) -> dict[str, str]:
        return sidecar_env(self.home, self.fake_url, self.keys)

    def _on_notification(self, method: str, params: Any, now: int) -> None:
        if method != "sidecar/streamDelta":
            return
        sink = self.sinks.get(params["streamId"])
        if sink is None:
            return
        kind = params["kind"]
        if kind == "text":
            sink.add(params["text"], now)
        elif kind == "restart":
            sink.restart()

    async def __aenter__(self) -> SidecarProcess:
        self.proc = await LspProcess.spawn(self.argv, self.env(), self._on_notification)
        try:
            await self.proc.initialize()
        except ConnectionError:
            said = self.proc.stderr.decode(errors="replace").strip().splitlines()[-1:]
            raise RuntimeError(f"{' '.join(self.argv[1:])} exited: {''.join(said)}") from None
        self.proc.notify("initialized", {})
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None:
            await self.proc.close()
        self._tmp.cleanup()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stream(
        self, sink: TokenSink, stream_id: str | None = None, timeout: float = 300.0
    ) -> tuple[int, Any]:
        """One ``sidecar/stream`` into ``sink``: (perf_counter_ns at sending, result).

        The stream id is also the message text, so the fake's record names it.
        """
        assert self.proc is not None
        self._next += 1
        stream_id = stream_id or f"b{self._next}"
        self.sinks[stream_id] = sink
        try:
            start = time.perf_counter_ns()
            result = await self.proc.request("sidecar/stream", stream_params(stream_id), timeout)
        finally:
            del self.sinks[stream_id]
        return start, result

    async def request(self, method: str, params: Any) -> Any:
        assert self.proc is not None
        return await self.proc.request(method, params)

    def record_statuses(self) -> list[tuple[int, Any]]:
        """From now on, every ``sidecar/didChangeStatus`` as (perf_counter_ns when read,
        params), in the list returned."""
        assert self.proc is not None
        seen: list[tuple[int, Any]] = []
        original = self.proc.on_notification

        def spy(method: str, params: Any, now: int) -> None:
            if method == "sidecar/didChangeStatus":
                seen.append((now, params))
            if original is not None:
                original(method, params, now)

        self.proc.on_notification = spy
        return seen


def sidecar_env(home: Path, fake_url: str, keys: tuple[str, ...]) -> dict[str, str]:
    """The environment of a sidecar that knows only the fake and the bench keys."""
    env = _clean_env(os.environ)
    env.update(
        LLM_SIDECAR_HOME=str(home),
        ANTHROPIC_BASE_URL=fake_url,
        ANTHROPIC_API_KEYS=",".join(keys),
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


def _clean_env(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        k: v
        for k, v in environ.items()
        if "_API_KEY" not in k and not k.endswith("_TOKEN") and not k.startswith("LLM_SIDECAR")
    }


async def failover_streams(
    sidecars: Sequence[SidecarProcess], streams_each: int, deltas: int
) -> tuple[list[float], int]:
    """Every sidecar at once: a warm-up stream, then ``streams_each`` times
    ``sidecar/keyReset`` and a stream whose first key answers 429 (as the fake is
    scripted). The first delta of each stream (request written → first text delta, ms)
    and how many streams failed over."""
    firsts: list[float] = []
    failed_over = 0
    for sidecar in sidecars:  # the first stream after a spawn warms up
        await sidecar.request("sidecar/keyReset", {"provider": "anthropic"})
        await sidecar.stream(TokenSink())

    async def loop(sidecar: SidecarProcess) -> None:
        nonlocal failed_over
        for _ in range(streams_each):
            await sidecar.request("sidecar/keyReset", {"provider": "anthropic"})
            sink = TokenSink()
            start, result = await sidecar.stream(sink)
            if not sink.exact(deltas):
                raise RuntimeError("a stream with failover lost deltas")
            failed_over += result["attempts"] == 2
            firsts.append((sink.first_ns - start) / 1e6)

    await asyncio.gather(*(loop(s) for s in sidecars))
    return firsts, failed_over
