"""5. Concurrency: many streams through one sidecar, a tenth of them rate limited.

Each round starts S streams at once through one llm-sidecar (two keys), then
the same S streams directly with httpx + httpx-sse, alternately. For the
sidecar, the fake answers a random tenth of the first S upstream requests with
429 (``retry-after-ms: 50``), whatever the key: those streams fail over. Every
stream's text must be exactly its tokens 0..N-1, in order, each once.

Two paces: 100 deltas/s per stream (latency: fake write → client decode, per
delta), and flat out (aggregate provider deltas per second: all deltas over the
time from the first request to the last delta).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from bench.contenders import Direct
from bench.fakehost import FakeHost, Record
from bench.lsp import rss_kib
from bench.sizes import Sizes
from bench.stats import Section, median, percentile
from bench.workload import KEYS, SidecarProcess, TokenSink, delta_write_ns, reply_step

__all__ = ["run"]

RATE_LIMITED_SHARE = 0.1
PACE_INTERVAL = 0.01
GOAL_P99_ADDED_MS = 2.0
RATE_LIMIT = {
    "kind": "error",
    "type": "rate_limit_error",
    "status": 429,
    "headers": {"retry-after-ms": "50"},
}


@dataclass
class Outcome:
    rates: list[float] = field(default_factory=list)  # aggregate deltas/s per round
    latencies: list[float] = field(default_factory=list)  # ms, every delta
    bad_streams: int = 0
    rate_limited: int = 0
    attempts: int = 0


def _latencies(
    sinks: dict[str, TokenSink], records: list[Record], n: int, paced: bool
) -> list[float]:
    served = {r["tag"]: r for r in records if r["status"] == 200}
    out: list[float] = []
    for tag, sink in sinks.items():
        assert sink.arrivals is not None
        written = delta_write_ns(served[tag], n, paced=paced)
        out += [(got - sent) / 1e6 for got, sent in zip(sink.arrivals, written, strict=True)]
    return out


async def _round(
    fake: FakeHost,
    streams: int,
    n: int,
    interval: float,
    sidecar: SidecarProcess | None,
    direct: Direct,
    rng: random.Random,
    outcome: Outcome,
    round_no: int,
) -> None:
    timed = interval > 0
    for key in KEYS:
        await fake.script(key, [], reply_step(n, interval))
    limited = round(streams * RATE_LIMITED_SHARE) if sidecar is not None else 0
    plan = [RATE_LIMIT] * limited + [reply_step(n, interval)] * (streams - limited)
    rng.shuffle(plan)
    await fake.plan(plan)
    since = len(await fake.records())
    sinks = {f"r{round_no}s{i}": TokenSink(n, timed=timed) for i in range(streams)}
    loop = asyncio.get_running_loop()
    start = loop.time()
    if sidecar is not None:
        results = await asyncio.gather(
            *(sidecar.stream(sink, stream_id) for stream_id, sink in sinks.items())
        )
        outcome.attempts += sum(result["attempts"] for _, result in results)
    else:
        await asyncio.gather(*(direct.stream(KEYS[0], sink, tag) for tag, sink in sinks.items()))
    elapsed = loop.time() - start
    records = await fake.records(since)
    outcome.rate_limited += sum(1 for r in records if r["status"] == 429)
    outcome.bad_streams += sum(1 for sink in sinks.values() if not sink.exact(n))
    if timed:
        outcome.latencies += _latencies(sinks, records, n, paced=True)
    else:
        outcome.rates.append(streams * n / elapsed)


async def run(sizes: Sizes) -> Section:
    streams, n, rounds = sizes.streams, sizes.concurrent_deltas, sizes.concurrent_rounds
    section = Section(
        "Concurrency",
        f"{streams} concurrent streams of {n} deltas, {rounds} rounds at each pace. "
        + (__doc__ or "").split("\n\n", 1)[1].replace("\n", " ").strip(),
    )
    rng = random.Random(7)
    ours, theirs = Outcome(), Outcome()
    peak_mb = 0.0
    async with (
        FakeHost(timestamps=True) as fake,
        SidecarProcess(fake.url, KEYS) as sidecar,
        Direct(fake.url) as direct,
    ):
        await _round(fake, 4, 20, 0.0, sidecar, direct, rng, Outcome(), -1)  # warm-up
        await _round(fake, 4, 20, 0.0, None, direct, rng, Outcome(), -1)
        round_no = 0
        for interval in (PACE_INTERVAL, 0.0):
            for _ in range(rounds):
                for contender, outcome in ((sidecar, ours), (None, theirs)):
                    await _round(
                        fake, streams, n, interval, contender, direct, rng, outcome, round_no
                    )
                    round_no += 1
        peak_mb = rss_kib(sidecar.pid, "VmHWM") / 1024
        await fake.plan([])
    total = streams * rounds * 2
    p99_added = percentile(ours.latencies, 99) - percentile(theirs.latencies, 99)
    section.numbers.update(
        aggregate=median(ours.rates),
        aggregate_direct=median(theirs.rates),
        p99_added_ms=p99_added,
        peak_rss_mb=peak_mb,
        bad_streams=ours.bad_streams + theirs.bad_streams,
        rate_limited=ours.rate_limited,
    )
    section.add(
        "flat out: aggregate deltas/s, llm-sidecar",
        f"{median(ours.rates):,.0f} ({median(ours.rates) / median(theirs.rates):.2f}× direct)",
    )
    section.add(
        "flat out: aggregate deltas/s, direct httpx (no rate limits)",
        f"{median(theirs.rates):,.0f}",
    )
    for p in (50, 99):
        s, d = percentile(ours.latencies, p), percentile(theirs.latencies, p)
        check = p == 99
        section.add(
            f"100 deltas/s each: p{p} added (llm-sidecar {s:.2f} ms − direct {d:.2f} ms)",
            f"{s - d:.2f} ms",
            f"≤ {GOAL_P99_ADDED_MS:.0f} ms" if check else "",
            s - d <= GOAL_P99_ADDED_MS if check else None,
        )
    section.add("peak RSS of the sidecar (VmHWM)", f"{peak_mb:.1f} MB")
    section.add(
        "upstream 429s answered / sidecar requests made",
        f"{ours.rate_limited} / {ours.attempts} (for {total} streams)",
    )
    section.add(
        "streams with lost, repeated or reordered deltas",
        f"{ours.bad_streams} of {total} (direct: {theirs.bad_streams})",
        "0",
        ours.bad_streams + theirs.bad_streams == 0,
    )
    return section
