"""7. Goodput under real rate limits: how much of a key pool's capacity users get.

The fake gives every key Anthropic's token buckets (requests, input tokens and output
tokens per period, continuously replenished, ``sidecar.fake._ratelimit``), with the
headers they imply on every response. A pool of K keys can therefore admit, over a run of
D seconds that starts with full buckets, exactly ``K × (bucket + refill × D)`` requests
when requests are what binds: that is the capacity C (per second: divided by D). Token
limits are set at about 1.5× what the mean request uses, so requests bind and the input
bucket only sometimes does, for the largest prompts.

Open loop: arrivals at ``load × C`` per second for D seconds, at random times (a fixed
count spread uniformly, the same schedule for every contender), each from one of N
clients (editors), each with a prompt of random realistic size (log-normal, median 1,500
tokens, 100 to 12,000). A request is launched at its arrival time whatever the earlier
ones are doing. Each answer streams ~300 output tokens in 17 deltas, 20 ms apart.

Contenders, alternated run by run (the order rotates), against the same fake and
schedule: one key used directly by the official ``anthropic`` SDK with its default two
retries that honour ``retry-after`` (the floor: no pool); LiteLLM's Router with the K
keys as deployments of one model, ``simple-shuffle`` and ``usage-based-routing-v2``,
``num_retries=2`` and its default cooldowns, one Router shared by every client, told each
key's limits as ``rpm``/``tpm``; llm-sidecar: S processes on one home (state shared
through it), each client an editor of one of them, ``sidecar/keyReset`` before each run.

Per run: served (the whole answer arrived), served within D as a fraction of C,
user-visible errors (requests that ended in an error), upstream 429s per served request
(every 429 the fake answered during the run), the wait (from the client sending the
request to the fake admitting it on some key, both ``perf_counter`` on the same
``CLOCK_MONOTONIC``: it holds every failed attempt, cooldown and relay hop), and moves
(served requests of a client on a key other than its previous served request's: a cold
prompt cache).
"""

from __future__ import annotations

import asyncio
import io
import math
import random
import tempfile
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.contenders import have_litellm, import_litellm
from bench.fakehost import FakeHost, Record
from bench.lsp import RpcError
from bench.sizes import Sizes
from bench.stats import Section, median, percentile
from bench.workload import MODEL, SidecarProcess, TokenSink, enter_all, tokens

__all__ = ["Cell", "capacity", "plot", "run", "schedule"]

REQUESTS = 4  # per key per period (``Sizes.goodput_period``): 2 requests/s per key at 2 s
INPUT_TOKENS = 12_000  # per key per period, ~1.5× the mean prompt × REQUESTS
OUTPUT_TOKENS = 2_400  # per key per period, ~2× the answers × REQUESTS


def limits(period: float) -> dict[str, Any]:
    return {
        "requests": REQUESTS,
        "input_tokens": INPUT_TOKENS,
        "output_tokens": OUTPUT_TOKENS,
        "period": period,
        "refill": "continuous",
    }


REPLY_TOKENS = 170  # bench tokens of 7 characters: ~300 output tokens by the fake's count
REPLY_CHUNK = 70  # characters per delta: 17 deltas
REPLY_INTERVAL = 0.02
PROMPT_MEDIAN, PROMPT_SIGMA, PROMPT_MIN, PROMPT_MAX = 1500, 0.8, 100, 12_000
CLIENTS = 6
SIDECARS = 3
REQUEST_TIMEOUT = 60.0  # only so that a hung request cannot hang the benchmark
GOAL_WAIT_S = 1.0
PLOT = Path(__file__).resolve().parent.parent / "docs" / "goodput.png"

REPLY = {
    "kind": "reply",
    "content": [{"type": "text", "text": tokens(REPLY_TOKENS)}],
    "chunk": REPLY_CHUNK,
    "interval": REPLY_INTERVAL,
    "ping_every": 0,
}


def pool_keys(k: int) -> tuple[str, ...]:
    # Fake keys, known only to the fake: never real credentials.
    return tuple(f"sk-ant-api03-goodput-key-{i:02d}-000000000000000{i:02d}" for i in range(k))


def capacity(k: int, seconds: float, period: float) -> float:
    """Requests the pool's request buckets admit in ``seconds``, starting full."""
    return k * (REQUESTS + REQUESTS / period * seconds)


@dataclass(frozen=True)
class Arrival:
    at: float  # seconds after the run's start
    client: int
    prompt_tokens: int


def schedule(rng: random.Random, requests: int, seconds: float) -> list[Arrival]:
    out = []
    for at in sorted(rng.uniform(0, seconds) for _ in range(requests)):
        size = round(rng.lognormvariate(math.log(PROMPT_MEDIAN), PROMPT_SIGMA))
        out.append(Arrival(at, rng.randrange(CLIENTS), min(PROMPT_MAX, max(PROMPT_MIN, size))))
    return out


def _prompt(tag: str, prompt_tokens: int) -> str:
    # The fake counts about four characters a token.
    return tag + " " + "x" * max(0, 4 * prompt_tokens - len(tag) - 1)


# -- contenders ----------------------------------------------------------------------------


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


class SidecarPool(Contender):
    name = "llm-sidecar"

    def __init__(self, sidecars: Sequence[SidecarProcess]) -> None:
        self.sidecars = sidecars
        self.name = f"llm-sidecar ({len(sidecars)} processes, one home)"

    async def reset(self) -> None:
        await self.sidecars[0].request("sidecar/keyReset", {"provider": "anthropic"})

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


# -- one run ---------------------------------------------------------------------------------


@dataclass
class Cell:
    """Every run of one contender at one (K, load)."""

    keys: int
    load: float
    contender: str
    arrivals: int = 0
    served: int = 0
    errors: int = 0
    limited: int = 0  # upstream 429s
    overloaded: int = 0  # upstream 529s
    moves: int = 0
    fractions: list[float] = field(default_factory=list)  # served within D / C, per run
    waits_ms: list[float] = field(default_factory=list)  # every served request

    @property
    def fraction(self) -> float:
        return median(self.fractions)

    @property
    def error_rate(self) -> float:
        return self.errors / self.arrivals if self.arrivals else 0.0

    @property
    def limited_per_served(self) -> float:
        return self.limited / self.served if self.served else math.inf

    @property
    def slow(self) -> int:
        return sum(1 for w in self.waits_ms if w > GOAL_WAIT_S * 1000)


async def _prepare(fake: FakeHost, keys: Sequence[str], period: float | None) -> None:
    """``period`` None: no rate limits (the warm-up)."""
    await fake.reset()  # an empty record, and buckets that start full
    for key in keys:
        await fake.script(key, [], REPLY)
    if period is not None:
        await fake.ratelimit(limits=limits(period))


def _moves(served: list[Record]) -> int:
    last: dict[str, str] = {}
    moves = 0
    for record in sorted(served, key=lambda r: r["finish_ns"]):
        client = record["tag"].split("n", 1)[0]
        if client in last and last[client] != record["key"]:
            moves += 1
        last[client] = record["key"]
    return moves


async def one_run(
    fake: FakeHost,
    contender: Contender,
    keys: Sequence[str],
    arrivals: list[Arrival],
    seconds: float,
    period: float,
    cell: Cell,
    run_no: int,
) -> None:
    await _prepare(fake, keys, period)
    await contender.reset()
    sent_ns: dict[str, int] = {}
    done: dict[str, bool] = {}

    async def one(index: int, arrival: Arrival) -> None:
        tag = f"g{run_no}c{arrival.client}n{index}"
        sink = TokenSink()
        sent_ns[tag] = time.perf_counter_ns()
        try:
            await asyncio.wait_for(
                contender.ask(arrival.client, tag, _prompt(tag, arrival.prompt_tokens), sink),
                REQUEST_TIMEOUT,
            )
            done[tag] = sink.exact(REPLY_TOKENS)
        except (RpcError, TimeoutError, ConnectionError):
            done[tag] = False
        except Exception as exc:  # the SDK's and LiteLLM's errors: what the user sees
            if type(exc).__module__.split(".")[0] not in ("anthropic", "litellm", "openai"):
                raise
            done[tag] = False

    started = time.perf_counter()
    start_ns = time.perf_counter_ns()
    tasks = []
    for index, arrival in enumerate(arrivals):
        delay = started + arrival.at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, arrival)))
    await asyncio.gather(*tasks)

    records = [r for r in await fake.records() if r["tag"] and r["tag"].startswith(f"g{run_no}c")]
    ok = [r for r in records if r["status"] == 200]
    by_tag = {r["tag"].split(" ", 1)[0]: r for r in ok}
    window_end = start_ns + seconds * 1e9
    cell.arrivals += len(arrivals)
    cell.served += sum(done.values())
    cell.errors += sum(1 for good in done.values() if not good)
    cell.limited += sum(1 for r in records if r["status"] == 429)
    cell.overloaded += sum(1 for r in records if r["status"] == 529)
    cell.fractions.append(
        sum(1 for r in ok if r["finish_ns"] <= window_end) / capacity(len(keys), seconds, period)
    )
    for tag, good in done.items():
        record = by_tag.get(tag)
        if good and record is not None:
            cell.waits_ms.append((record["finish_ns"] - sent_ns[tag]) / 1e6)
    cell.moves += _moves([dict(r, tag=r["tag"].split(" ", 1)[0]) for r in ok])


# -- the picture -----------------------------------------------------------------------------


def plot(cells: Sequence[Cell], out: Path | io.BytesIO) -> bool:
    """Served fraction of capacity and user-visible error rate against offered load, one
    line per contender, one column per pool size. False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    pools = sorted({c.keys for c in cells})
    names = list(dict.fromkeys(c.contender for c in cells))
    fig, axes = plt.subplots(
        2, len(pools), figsize=(4.2 * len(pools), 6.4), sharex=True, squeeze=False
    )
    for column, k in enumerate(pools):
        top, bottom = axes[0][column], axes[1][column]
        loads = sorted({c.load for c in cells if c.keys == k})
        top.plot(loads, [min(x, 1.0) for x in loads], ":", color="grey", label="ideal")
        for name in names:
            mine = sorted((c for c in cells if c.keys == k and c.contender == name), key=_load)
            xs = [c.load for c in mine]
            top.plot(xs, [c.fraction for c in mine], marker="o", label=name)
            bottom.plot(xs, [c.error_rate for c in mine], marker="o", label=name)
        top.set_title(f"K = {k} key{'s' if k > 1 else ''}")
        top.set_ylim(0, 1.1)
        bottom.set_ylim(-0.02, 1.0)
        bottom.set_xlabel("offered load (× capacity C)")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("served within D / capacity")
    axes[1][0].set_ylabel("user-visible errors / request")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    fig.savefig(out, format="png", dpi=100)
    plt.close(fig)
    return True


def _load(cell: Cell) -> float:
    return cell.load


# -- the benchmark -----------------------------------------------------------------------------


def _spread(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def _row(cell: Cell) -> str:
    waits = cell.waits_ms
    p50, p99 = (percentile(waits, 50), percentile(waits, 99)) if waits else (math.nan, math.nan)
    limited = f"{cell.limited_per_served:.2f}" if cell.served else f"{cell.limited} (none served)"
    cells = [
        str(cell.keys),
        f"{cell.load:.1f}",
        cell.contender,
        f"{cell.served} / {cell.arrivals}",
        _spread(cell.fractions),
        str(cell.errors),
        limited,
        f"{p50:,.0f} / {p99:,.0f}",
        str(cell.slow),
        str(cell.moves),
    ]
    return "| " + " | ".join(cells) + " |"


async def run(sizes: Sizes, *, litellm: bool = True) -> Section:
    seconds, rounds, period = sizes.goodput_seconds, sizes.goodput_rounds, sizes.goodput_period
    use_litellm = litellm and have_litellm()
    rng = random.Random(19)
    cells: dict[tuple[int, float, str], Cell] = {}
    run_no = 0
    async with FakeHost() as fake:
        for k in sizes.goodput_pools:
            keys = pool_keys(k)
            async with AsyncExitStack() as stack:
                home = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "home"
                sidecars = await enter_all(
                    stack, [SidecarProcess(fake.url, keys, home=home) for _ in range(SIDECARS)]
                )
                floor = Floor(fake.url, keys[0])
                stack.push_async_callback(floor.close)
                contenders: list[Contender] = [floor]
                if use_litellm:
                    contenders += [
                        LiteLlmRouter(fake.url, keys, "simple-shuffle", period),
                        LiteLlmRouter(fake.url, keys, "usage-based-routing-v2", period),
                    ]
                contenders.append(SidecarPool(sidecars))
                # Warm-up, no limits: first-use imports and connections stay out of runs.
                await _prepare(fake, keys, None)
                for contender in contenders:
                    await contender.reset()
                    await asyncio.gather(
                        *(
                            contender.ask(client, f"w{client}", "warm up", TokenSink())
                            for client in range(SIDECARS)
                        )
                    )
                for load_no, load in enumerate(sizes.goodput_loads):
                    count = round(load * capacity(k, seconds, period))
                    for round_no in range(rounds):
                        arrivals = schedule(rng, count, seconds)
                        turn = (load_no + round_no) % len(contenders)
                        for contender in contenders[turn:] + contenders[:turn]:
                            cell = cells.setdefault(
                                (k, load, contender.name), Cell(k, load, contender.name)
                            )
                            await one_run(
                                fake, contender, keys, arrivals, seconds, period, cell, run_no
                            )
                            run_no += 1
    return _section(list(cells.values()), sizes, use_litellm)


def _section(cells: list[Cell], sizes: Sizes, use_litellm: bool) -> Section:
    seconds, rounds, period = sizes.goodput_seconds, sizes.goodput_rounds, sizes.goodput_period
    method = (__doc__ or "").split("\n\n", 1)[1].replace("\n", " ").strip()
    section = Section(
        "Goodput under rate limits",
        f"K = {', '.join(map(str, sizes.goodput_pools))} keys, each "
        f"{REQUESTS} requests, {INPUT_TOKENS:,} input and {OUTPUT_TOKENS:,} output tokens per "
        f"{period:g} s (a minute scaled {60 / period:g}×), so C = {REQUESTS / period:g} "
        f"requests/s per key plus the full bucket at the start; D = {seconds:g} s, "
        f"{rounds} run{'s' if rounds > 1 else ''} per (K, load, contender), "
        f"N = {CLIENTS} clients, S = {SIDECARS} sidecar processes. {method}",
    )
    sidecar = [c for c in cells if c.contender.startswith("llm-sidecar")]
    routers = [c for c in cells if c.contender.startswith("LiteLLM")]
    for k in sizes.goodput_pools:
        mine = {c.load: c for c in sidecar if c.keys == k}
        low = [c for load, c in mine.items() if load <= 0.9]
        high = [c for load, c in mine.items() if load > 1.0]
        if low:
            errors = sum(c.errors for c in low)
            slow = sum(c.slow for c in low)
            section.add(
                f"llm-sidecar, K = {k}, load ≤ 0.9×C: user-visible errors; served requests "
                f"waiting > {GOAL_WAIT_S:g} s",
                f"{errors}; {slow} (of {sum(c.arrivals for c in low)})",
                "0; 0",
                errors == 0 and slow == 0,
            )
        if high:
            loads = ", ".join(f"{c.load:g}×: {c.fraction:.2f}" for c in high)
            section.add(
                f"llm-sidecar, K = {k}, load > C: served within D / C",
                loads,
                "≥ 0.95",
                all(c.fraction >= 0.95 for c in high),
            )
            spent = ", ".join(f"{c.load:g}×: {c.limited_per_served:.2f}" for c in high)
            section.add(
                f"llm-sidecar, K = {k}, load > C: upstream 429s per served request",
                spent,
                "≤ 0.05",
                all(c.limited_per_served <= 0.05 for c in high),
            )
        theirs = [c for c in routers if c.keys == k]
        if theirs:
            ahead_served = sum(
                1
                for load, c in mine.items()
                if all(c.fraction > r.fraction for r in theirs if r.load == load)
            )
            ahead_429 = sum(
                1
                for load, c in mine.items()
                if all(
                    c.limited_per_served < r.limited_per_served for r in theirs if r.load == load
                )
            )
            section.add(
                f"llm-sidecar, K = {k}: ahead of both LiteLLM Routers on served / C; on 429s "
                "per served request",
                f"at {ahead_served} of {len(mine)} loads; at {ahead_429} of {len(mine)}",
                "every load",
                ahead_served == ahead_429 == len(mine),
            )
    header = (
        "| K | load | contender | served / arrived | served within D / C | user-visible "
        "errors | 429s per served | wait p50 / p99 (ms) | waited > 1 s | moved keys |"
    )
    table = [header, "|" + "---|" * 10, *(_row(c) for c in cells)]
    out = PLOT if not sizes.smoke else io.BytesIO()
    drawn = plot(cells, out)
    picture = (
        f"![served fraction of capacity and user-visible errors against offered load]({PLOT.name})"
        if drawn and not sizes.smoke
        else "matplotlib is not installed: no plot."
        if not drawn
        else "(smoke run: the plot was drawn in memory, not written)"
    )
    section.extra += [picture, "\n".join(table)]
    if not use_litellm:
        section.extra.append("LiteLLM is not installed: its rows are missing.")
    section.numbers.update(
        runs=float(sum(len(c.fractions) for c in cells)),
        served=float(sum(c.served for c in cells)),
        arrivals=float(sum(c.arrivals for c in cells)),
        sidecar_served=float(sum(c.served for c in sidecar)),
        sidecar_errors=float(sum(c.errors for c in sidecar)),
        upstream_429=float(sum(c.limited for c in cells)),
        plotted=float(drawn),
    )
    return section
