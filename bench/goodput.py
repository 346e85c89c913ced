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
retries that honour ``retry-after`` (the floor: no pool; run at the smallest K only, since
at K keys' load one key can serve at most 1/K of C); LiteLLM's Router with the K keys as
deployments of one model, ``simple-shuffle`` and ``usage-based-routing-v2`` (at K = 1
only the first: with one deployment there is nothing to route), ``num_retries=2`` and its
default cooldowns, one Router shared by every client, told each key's limits as
``rpm``/``tpm``; llm-sidecar: S stdio processes on one home (state shared through it),
each client an editor of one of them, ``sidecar/keyReset`` and ``sidecar/policy`` before
each run, once per pool policy (``sticky``, and at K > 1 ``primary``); and
``llm-sidecar gateway`` on the same home, each client a tool with its own HTTP
connection pool streaming ``POST /anthropic/v1/messages`` with httpx + httpx-sse and no
retries of its own (what the gateway answers is what the user sees), with the default
``sticky`` policy. The pools run one
after the other, never at the same time.

Per run: served (the whole answer arrived), served within D as a fraction of C,
user-visible errors (requests that ended in an error), upstream 429s per served request
(every 429 the fake answered during the run), the wait (from the client sending the
request to the fake admitting it on some key, both ``perf_counter`` on the same
``CLOCK_MONOTONIC``: it holds every failed attempt, cooldown and relay hop), moves
(served requests of a client on a key other than its previous served request's: a cold
prompt cache), and of the errors, those whose retry time proved right within a second:
a request at the moment the error named would have been admitted on one of the user's
keys, and would not have been a second before (``bench/goodput_retry.py``, which replays
the fake's own decisions).
"""

from __future__ import annotations

import asyncio
import math
import random
import tempfile
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.contenders import have_litellm
from bench.fakehost import FakeHost, Record
from bench.goodput_contenders import (
    REQUEST_TIMEOUT,
    REQUESTS,
    Contender,
    Floor,
    GatewayError,
    GatewayPool,
    GatewayProcess,
    LiteLlmRouter,
    SidecarPool,
    limits,
)
from bench.goodput_report import Cell, section
from bench.goodput_retry import Told, judge, retry_moment
from bench.lsp import RpcError
from bench.sizes import Sizes
from bench.stats import Section
from bench.workload import MODEL, SidecarProcess, TokenSink, enter_all, tokens

__all__ = ["capacity", "run", "schedule"]

REPLY_TOKENS = 170  # bench tokens of 7 characters: ~300 output tokens by the fake's count
REPLY_CHUNK = 70  # characters per delta: 17 deltas
REPLY_INTERVAL = 0.02
REPLY_OUTPUT = len(tokens(REPLY_TOKENS)) // 4  # output tokens, as the fake counts them
PROMPT_MEDIAN, PROMPT_SIGMA, PROMPT_MIN, PROMPT_MAX = 1500, 0.8, 100, 12_000
CLIENTS = 6
SIDECARS = 3
# Where the errors a user would see come from (an unexpected error elsewhere is a bug).
USER_VISIBLE = ("anthropic", "litellm", "openai", "httpx", "httpx_sse")

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


# -- one run ---------------------------------------------------------------------------------


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
    told: list[Told] = []

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
        except (RpcError, GatewayError, TimeoutError, ConnectionError) as exc:
            failed(tag, arrival, exc)
        except Exception as exc:  # the SDK's, LiteLLM's and httpx's errors: what the user sees
            if type(exc).__module__.split(".")[0] not in USER_VISIBLE:
                raise
            failed(tag, arrival, exc)

    def failed(tag: str, arrival: Arrival, exc: BaseException) -> None:
        done[tag] = False
        at = time.perf_counter()
        told.append(Told(at, retry_moment(exc, at), arrival.prompt_tokens, REPLY_OUTPUT))

    started = time.perf_counter()
    start_ns = time.perf_counter_ns()
    tasks = []
    for index, arrival in enumerate(arrivals):
        delay = started + arrival.at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, arrival)))
    await asyncio.gather(*tasks)
    cell.wall_s.append(time.perf_counter() - started)

    cell.errors_with_retry += sum(1 for t in told if t.retry is not None)
    # The floor's user has one key; every other contender's has the pool.
    judged = judge(
        await fake.admissions(),
        limits(period),
        keys[:1] if isinstance(contender, Floor) else keys,
        MODEL,
        told,
    )
    cell.retry_right += judged.right
    cell.retry_early += judged.early
    cell.retry_late += judged.late
    cell.replay_mismatches += judged.mismatches
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


# -- the benchmark -----------------------------------------------------------------------------


async def _one_pool(k: int, sizes: Sizes, use_litellm: bool, cells: list[Cell]) -> None:
    """Every (load, contender) of pool size ``k``, against a fake of its own."""
    seconds, rounds, period = sizes.goodput_seconds, sizes.goodput_rounds, sizes.goodput_period
    rng = random.Random(1900 + k)  # the same schedules whatever else runs
    keys = pool_keys(k)
    async with FakeHost() as fake, AsyncExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "home"
        sidecars = await enter_all(
            stack, [SidecarProcess(fake.url, keys, home=home) for _ in range(SIDECARS)]
        )
        contenders: list[Contender] = []
        if k == min(sizes.goodput_pools):
            # One key is one key whatever the pool: at a larger K it only meets K times
            # its capacity and serves at most 1/K of C, which says nothing new.
            floor = Floor(fake.url, keys[0])
            stack.push_async_callback(floor.close)
            contenders.append(floor)
        if use_litellm:
            # With one deployment there is nothing to route between: one strategy says it.
            strategies = ["simple-shuffle"] + (["usage-based-routing-v2"] if k > 1 else [])
            contenders += [LiteLlmRouter(fake.url, keys, s, period) for s in strategies]
        # Each pool policy; at K = 1 they are one and the same key.
        policies = ["sticky"] + (["primary"] if k > 1 else [])
        contenders += [SidecarPool(sidecars, policy) for policy in policies]
        # The gateway on the same home: one more process holding the pool.
        gateway = await stack.enter_async_context(GatewayProcess(fake.url, keys, home))
        tools = GatewayPool(gateway, CLIENTS, reset_via=sidecars[0])
        stack.push_async_callback(tools.close)
        contenders.append(tools)
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
        run_no = 0
        for load_no, load in enumerate(sizes.goodput_loads):
            count = round(load * capacity(k, seconds, period))
            mine = {c.name: Cell(k, load, c.name) for c in contenders}
            cells += mine.values()
            for round_no in range(rounds):
                arrivals = schedule(rng, count, seconds)
                turn = (load_no + round_no) % len(contenders)
                for contender in contenders[turn:] + contenders[:turn]:
                    cell = mine[contender.name]
                    await one_run(fake, contender, keys, arrivals, seconds, period, cell, run_no)
                    run_no += 1


async def run(sizes: Sizes, *, litellm: bool = True) -> Section:
    use_litellm = litellm and have_litellm()
    cells: list[Cell] = []
    for k in sizes.goodput_pools:
        await _one_pool(k, sizes, use_litellm, cells)
    method = (__doc__ or "").split("\n\n", 1)[1].replace("\n", " ").strip()
    return section(
        cells,
        sizes,
        use_litellm=use_litellm,
        method=method,
        clients=CLIENTS,
        sidecars=SIDECARS,
    )
