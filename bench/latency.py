"""3. Added latency per delta: what the sidecar adds between the provider and the editor.

The fake stamps every SSE event with ``perf_counter_ns`` as it writes it; the
client stamps each token when it is decoded (the same clock: one machine). A
delta's latency is the difference. The direct consumer (httpx + httpx-sse) and
llm-sidecar stream the same reply alternately; the sidecar's added latency at a
percentile is its latency there less the direct consumer's.
"""

from __future__ import annotations

from bench.contenders import Contender, Direct, Sidecar
from bench.fakehost import FakeHost
from bench.sizes import Sizes
from bench.stats import Section, percentile
from bench.workload import KEYS, TokenSink, delta_write_ns, reply_step

__all__ = ["measure", "run"]

GOAL_P99_ADDED_MS = 2.0
PACE_INTERVAL = 0.01  # 100 deltas/s, one event per HTTP chunk


async def measure(
    fake: FakeHost, contenders: list[Contender], n: int, rounds: int, interval: float
) -> tuple[dict[str, list[float]], int]:
    """Per-delta latencies in ms per contender, over ``rounds`` alternated streams;
    and how many streams lost, repeated or reordered a delta."""
    key = KEYS[0]
    await fake.script(key, [], reply_step(n, interval))
    latencies: dict[str, list[float]] = {c.name: [] for c in contenders}
    lost = 0
    for _ in range(rounds):
        for contender in contenders:
            since = len(await fake.records())
            sink = TokenSink(n, timed=True)
            await contender.stream(key, sink)
            record = (await fake.records(since))[-1]
            lost += 0 if sink.exact(n) else 1
            written = delta_write_ns(record, n)
            assert sink.arrivals is not None
            latencies[contender.name] += [
                (got - sent) / 1e6 for got, sent in zip(sink.arrivals, written, strict=True)
            ]
    return latencies, lost


def _report(section: Section, label: str, latencies: dict[str, list[float]], goal: bool) -> None:
    direct, ours = latencies[Direct.name], latencies[Sidecar.name]
    for p in (50, 99):
        d, s = percentile(direct, p), percentile(ours, p)
        added = s - d
        section.numbers[f"{label}:p{p}:direct_ms"] = d
        section.numbers[f"{label}:p{p}:sidecar_ms"] = s
        section.numbers[f"{label}:p{p}:added_ms"] = added
        check = goal and p == 99
        section.add(
            f"{label}: p{p} added (llm-sidecar {s:.2f} ms − direct {d:.2f} ms)",
            f"{added:.2f} ms",
            f"≤ {GOAL_P99_ADDED_MS:.0f} ms" if check else "",
            added <= GOAL_P99_ADDED_MS if check else None,
        )


async def run(sizes: Sizes) -> Section:
    paced_n, flat_n = sizes.paced_deltas, sizes.flat_deltas
    section = Section(
        "Added latency per delta",
        f"Fake write → client decode, per delta. At 100 deltas/s ({paced_n} deltas per "
        f"stream, {sizes.paced_rounds} rounds) and flat out ({flat_n:,} deltas, "
        f"{sizes.flat_rounds} rounds), llm-sidecar and the direct consumer alternated. "
        "Flat out, latency is mostly queueing: the fake writes faster than anyone reads.",
    )
    lost = 0
    async with (
        FakeHost(timestamps=True) as fake,
        Direct(fake.url) as direct,
        Sidecar(fake.url) as sidecar,
    ):
        contenders: list[Contender] = [direct, sidecar]
        await measure(fake, contenders, 20, 1, 0.0)  # warm-up
        paced, lost_paced = await measure(
            fake, contenders, paced_n, sizes.paced_rounds, PACE_INTERVAL
        )
        flat, lost_flat = await measure(fake, contenders, flat_n, sizes.flat_rounds, 0.0)
        lost = lost_paced + lost_flat
    _report(section, "100 deltas/s", paced, goal=True)
    _report(section, "flat out", flat, goal=False)
    section.numbers["lost_streams"] = lost
    section.add("streams with lost, repeated or reordered deltas", str(lost), "0", lost == 0)
    return section
