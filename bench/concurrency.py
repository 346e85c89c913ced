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
import time
from dataclasses import dataclass, field

from bench.contenders import Direct
from bench.fakehost import FakeHost, Record
from bench.lsp import cpu_seconds, rss_kib
from bench.sizes import Sizes
from bench.stats import Section, median, percentile
from bench.workload import KEYS, SidecarProcess, TokenSink, delta_write_ns, reply_step

__all__ = ["Outcome", "run", "run_round"]

RATE_LIMITED_SHARE = 0.1
PACE_INTERVAL = 0.01
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
    all_started_ms: list[float] = field(default_factory=list)  # last stream's first delta
    cpu_us: list[float] = field(default_factory=list)  # sidecar CPU per delta, per round
    bad_streams: int = 0
    rate_limited: int = 0
    attempts: int = 0


def _latencies(sinks: dict[str, TokenSink], records: list[Record], n: int) -> list[float]:
    served = {r["tag"]: r for r in records if r["status"] == 200}
    out: list[float] = []
    for tag, sink in sinks.items():
        assert sink.arrivals is not None
        written = delta_write_ns(served[tag], n)
        out += [(got - sent) / 1e6 for got, sent in zip(sink.arrivals, written, strict=True)]
    return out


async def run_round(
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
    start = time.perf_counter_ns()
    if sidecar is not None:
        cpu_before = cpu_seconds(sidecar.pid)
        results = await asyncio.gather(
            *(sidecar.stream(sink, stream_id) for stream_id, sink in sinks.items())
        )
        outcome.cpu_us.append((cpu_seconds(sidecar.pid) - cpu_before) / (streams * n) * 1e6)
        outcome.attempts += sum(result["attempts"] for _, result in results)
    else:
        await asyncio.gather(*(direct.stream(KEYS[0], sink, tag) for tag, sink in sinks.items()))
    elapsed = (time.perf_counter_ns() - start) / 1e9
    outcome.all_started_ms.append((max(s.first_ns for s in sinks.values()) - start) / 1e6)
    records = await fake.records(since)
    outcome.rate_limited += sum(1 for r in records if r["status"] == 429)
    outcome.bad_streams += sum(1 for sink in sinks.values() if not sink.exact(n))
    if timed:
        outcome.latencies += _latencies(sinks, records, n)
    else:
        outcome.rates.append(streams * n / elapsed)


async def run(sizes: Sizes) -> Section:
    streams, n, rounds = sizes.streams, sizes.concurrent_deltas, sizes.concurrent_rounds
    section = Section(
        "Concurrency",
        f"{streams} concurrent streams of {n} deltas, {rounds} rounds at each pace. "
        + (__doc__ or "").split("\n\n", 1)[1].replace("\n", " ").strip()
        + " No goal was set for latency here: the figures show where the machine's two "
        "cores run out.",
    )
    rng = random.Random(7)
    paces = {"100 deltas/s each": PACE_INTERVAL, "flat out": 0.0}
    ours = {pace: Outcome() for pace in paces}
    theirs = {pace: Outcome() for pace in paces}
    peak_mb = 0.0
    async with (
        FakeHost(timestamps=True) as fake,
        SidecarProcess(fake.url, KEYS) as sidecar,
        Direct(fake.url) as direct,
    ):
        await run_round(fake, 4, 20, 0.0, sidecar, direct, rng, Outcome(), -1)  # warm-up
        await run_round(fake, 4, 20, 0.0, None, direct, rng, Outcome(), -1)
        round_no = 0
        for pace, interval in paces.items():
            for _ in range(rounds):
                for contender, outcome in ((sidecar, ours[pace]), (None, theirs[pace])):
                    await run_round(
                        fake, streams, n, interval, contender, direct, rng, outcome, round_no
                    )
                    round_no += 1
        peak_mb = rss_kib(sidecar.pid, "VmHWM") / 1024
        await fake.plan([])
    paced, flat = "100 deltas/s each", "flat out"
    total = streams * rounds * len(paces)
    bad = sum(o.bad_streams for o in (*ours.values(), *theirs.values()))
    rate_limited = sum(o.rate_limited for o in ours.values())
    attempts = sum(o.attempts for o in ours.values())
    section.numbers.update(
        aggregate=median(ours[flat].rates),
        aggregate_direct=median(theirs[flat].rates),
        peak_rss_mb=peak_mb,
        bad_streams=bad,
        rate_limited=rate_limited,
    )
    ratio = median(ours[flat].rates) / median(theirs[flat].rates)
    section.add(
        "flat out: aggregate deltas/s, llm-sidecar (direct httpx, no rate limits)",
        f"{median(ours[flat].rates):,.0f} ({median(theirs[flat].rates):,.0f}; {ratio:.2f}×)",
    )
    for p in (50, 99):
        s, d = percentile(ours[paced].latencies, p), percentile(theirs[paced].latencies, p)
        section.numbers[f"p{p}_added_ms"] = s - d
        section.add(
            f"{paced}: p{p} latency, llm-sidecar − direct",
            f"{s:.2f} − {d:.2f} = {s - d:.2f} ms",
        )
    for pace in paces:
        section.add(
            f"{pace}: time until every stream had a delta, llm-sidecar (direct)",
            f"{median(ours[pace].all_started_ms):.0f} ms "
            f"({median(theirs[pace].all_started_ms):.0f} ms)",
        )
        section.add(f"{pace}: sidecar CPU per delta", f"{median(ours[pace].cpu_us):.0f} µs")
    section.add("peak RSS of the sidecar (VmHWM)", f"{peak_mb:.1f} MB")
    section.add(
        "upstream 429s answered / sidecar requests made",
        f"{rate_limited} / {attempts} (for {total} streams)",
    )
    section.add(
        "streams with lost, repeated or reordered deltas (llm-sidecar and direct)",
        f"{bad} of {2 * total}",
        "0",
        bad == 0,
    )
    return section
