"""6. Prototyped hot-path changes, measured against llm-sidecar as it is.

Each change is a patch in :mod:`bench.variants`, applied to a sidecar process
started through ``python -m bench.variants PATCHES`` (or, for the in-process
hot path, to a :mod:`bench.hotpath` worker). As-is and patched alternate in one
run, so that their difference is the change's effect, not the machine's mood.
A patch that no longer applies to the code (it changed) is reported as such.
"""

from __future__ import annotations

import random
from contextlib import AsyncExitStack

from bench import concurrency, failover, hotpath
from bench.contenders import Contender, Direct, Sidecar
from bench.fakehost import FakeHost
from bench.sizes import Sizes
from bench.stats import Section, median, percentile
from bench.throughput import measure
from bench.workload import KEYS, SidecarProcess, enter_all

__all__ = ["run"]

ALL = "sse,builder,coalesce,pipe"
HOTPATH_PATCHES = (hotpath.DIRECT, "", "sse", "builder", "coalesce", "sse,builder,coalesce")
CONCURRENCY_PATCHES = ("", "pipe", "coalesce", "pipe,coalesce")
FAILOVER_PATCHES = ("", "status", "writebehind")


def _label(patches: str) -> str:
    if patches == hotpath.DIRECT:
        return "direct consumer (floor)"
    return f"llm-sidecar + {patches}" if patches else "llm-sidecar as is"


async def _hotpath(section: Section, sizes: Sizes) -> None:
    shapes = {"burst": sizes.throughput_deltas, "trickle": sizes.paced_deltas}
    if sizes.smoke:  # one shape, the floor and one patch: that it runs, not what it finds
        shapes.pop("trickle")
    patch_sets = HOTPATH_PATCHES[1:3] if sizes.smoke else HOTPATH_PATCHES
    rounds = 1 if sizes.smoke else 4
    for shape, n in shapes.items():
        async with FakeHost() as fake:
            await fake.script(KEYS[0], [], hotpath.script_step(shape, n))
            cpu = await hotpath.measure(fake.url, patch_sets, shape, n, rounds, runs=3)
        # Best of all samples, as timeit reports: the one least disturbed by other processes.
        as_is = min(cpu[""])
        for patches, values in cpu.items():
            section.numbers[f"hotpath:{shape}:{patches or 'as-is'}"] = min(values)
            section.add(
                f"in-process CPU per delta, {shape} ({n:,} deltas): {_label(patches)}",
                f"{min(values):.1f} µs ({min(values) / as_is:.2f}× as is)",
            )


async def _throughput(section: Section, sizes: Sizes) -> None:
    async with FakeHost() as fake, AsyncExitStack() as stack:
        kinds: list[Contender] = [
            Direct(fake.url),
            Sidecar(fake.url),
            Sidecar(fake.url, patches=ALL),
        ]
        contenders = await enter_all(stack, kinds)
        rates, cpu, lost = await measure(
            contenders, fake, sizes.throughput_deltas, sizes.throughput_rounds
        )
    for c in contenders[1:]:
        ratio = median([v / d for v, d in zip(rates[c.name], rates[Direct.name], strict=True)])
        section.add(
            f"end to end throughput, {c.name}: deltas/s (CPU per delta)",
            f"{median(rates[c.name]):,.0f} ({ratio:.2f}× direct; {median(cpu[c.name]):.1f} µs)",
        )
    section.numbers["lost_streams"] = lost


async def _concurrency(section: Section, sizes: Sizes) -> None:
    streams, n = sizes.streams, sizes.concurrent_deltas
    rng = random.Random(11)
    variants = CONCURRENCY_PATCHES[::3] if sizes.smoke else CONCURRENCY_PATCHES
    outcomes = {p: concurrency.Outcome() for p in variants}
    async with FakeHost(timestamps=True) as fake, AsyncExitStack() as stack:
        processes = [SidecarProcess(fake.url, KEYS, p) for p in variants]
        sidecars = dict(zip(variants, await enter_all(stack, processes), strict=True))
        direct = await stack.enter_async_context(Direct(fake.url))
        round_no = 1000
        for _ in range(1 if sizes.smoke else 2):
            for patches, sidecar in sidecars.items():
                await concurrency.run_round(
                    fake,
                    streams,
                    n,
                    concurrency.PACE_INTERVAL,
                    sidecar,
                    direct,
                    rng,
                    outcomes[patches],
                    round_no,
                )
                round_no += 1
        await fake.plan([])
    for patches, o in outcomes.items():
        section.numbers["lost_streams"] = section.numbers.get("lost_streams", 0) + o.bad_streams
        section.add(
            f"{streams} streams at 100 deltas/s, {_label(patches)}: every stream started; "
            "CPU per delta; p50 / p99 latency",
            f"{median(o.all_started_ms):.0f} ms; {median(o.cpu_us):.0f} µs; "
            f"{percentile(o.latencies, 50):.1f} / {percentile(o.latencies, 99):.1f} ms",
        )


async def _failover(section: Section, sizes: Sizes) -> None:
    times: dict[str, list[float]] = {p: [] for p in FAILOVER_PATCHES}
    trips: list[float] = []
    async with FakeHost() as fake, AsyncExitStack() as stack:
        await failover.script(fake)
        processes = [SidecarProcess(fake.url, KEYS, p) for p in FAILOVER_PATCHES]
        sidecars = dict(zip(FAILOVER_PATCHES, await enter_all(stack, processes), strict=True))
        direct = await stack.enter_async_context(Direct(fake.url))
        for warm_up in (True, *([False] * sizes.failover_runs)):
            sample = {p: await failover.sidecar_once(fake, s) for p, s in sidecars.items()}
            trip = await failover.round_trip(direct)
            if not warm_up:
                trips.append(trip)
                for patches, value in sample.items():
                    times[patches].append(value)
    rtt = median(trips)
    for patches, values in times.items():
        added = median(values) - rtt
        section.numbers[f"failover_added_ms:{patches or 'as-is'}"] = added
        section.add(f"failover, {_label(patches)}: added", f"{added:.2f} ms")


async def run(sizes: Sizes) -> Section:
    section = Section(
        "Prototyped changes",
        "Patches (`bench/variants.py`): `sse`, a lean SSE parser in place of httpx-sse; "
        "`builder`, the message text joined once instead of `+=` per delta; `coalesce`, "
        "one stdout write per event-loop turn for all streams; `pipe`, stdin read by the "
        "event loop instead of a worker thread per line; `status`, status updates deferred "
        "until the replay request is out; `writebehind`, the cooldown written in a worker "
        "thread while the replay goes out. In-process CPU per delta: the engine in a worker "
        "process against the fake, deltas serialized into /dev/null (`bench/hotpath.py`); "
        "*burst*: the whole stream at once, *trickle*: one event per network read; best of "
        "12 streams per variant, workers alternated. The "
        "other rows repeat benchmarks 2, 4 and 5 with as-is and patched sidecars alternated.",
    )
    for part in (_hotpath, _throughput, _concurrency, _failover):
        try:
            await part(section, sizes)
        except (ConnectionError, RuntimeError) as exc:  # a patch that no longer applies
            section.extra.append(f"{part.__name__.strip('_')}: not measured ({exc}).")
    return section
