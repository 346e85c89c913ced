"""6. Prototyped hot-path changes, measured against llm-sidecar as it is.

Each change is a patch in :mod:`bench.variants`, applied to a sidecar process
started through ``python -m bench.variants PATCHES``. As-is and patched
sidecars alternate in one run, so their difference is the change's gain.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from bench import failover
from bench.contenders import Contender, Direct, Sidecar
from bench.fakehost import FakeHost
from bench.sizes import Sizes
from bench.stats import Section, median
from bench.throughput import measure
from bench.workload import KEYS, SidecarProcess, enter_all

__all__ = ["THROUGHPUT_PATCHES", "run"]

THROUGHPUT_PATCHES = ("sse", "builder", "sse,builder")
FAILOVER_PATCHES = ("status",)


async def _throughput(section: Section, sizes: Sizes) -> None:
    n = sizes.throughput_deltas
    async with FakeHost() as fake, AsyncExitStack() as stack:
        kinds: list[Contender] = [Direct(fake.url), Sidecar(fake.url)]
        patches = THROUGHPUT_PATCHES[-1:] if sizes.smoke else THROUGHPUT_PATCHES
        kinds += [Sidecar(fake.url, patches=p) for p in patches]
        contenders = await enter_all(stack, kinds)
        rates, cpu, lost = await measure(contenders, fake, n, sizes.throughput_rounds)
    as_is = Sidecar.name
    for c in contenders[1:]:
        gain = median([v / a for v, a in zip(rates[c.name], rates[as_is], strict=True)])
        ratio = median([v / d for v, d in zip(rates[c.name], rates[Direct.name], strict=True)])
        cpu_us = median(cpu[c.name])
        section.numbers[f"throughput:{c.name}"] = median(rates[c.name])
        section.numbers[f"cpu_us:{c.name}"] = cpu_us
        section.add(
            f"throughput, {c.name}: deltas/s (CPU per delta)",
            f"{median(rates[c.name]):,.0f} ({ratio:.2f}× direct, {gain:.2f}× as is; "
            f"{cpu_us:.1f} µs)",
        )
    section.numbers["lost_streams"] = lost


async def _failover(section: Section, sizes: Sizes) -> None:
    variants = {"llm-sidecar": "", **{f"llm-sidecar + {p}": p for p in FAILOVER_PATCHES}}
    times: dict[str, list[float]] = {name: [] for name in variants}
    trips: list[float] = []
    async with FakeHost() as fake, AsyncExitStack() as stack:
        await failover.script(fake)
        processes = [SidecarProcess(fake.url, KEYS, patches) for patches in variants.values()]
        sidecars = dict(zip(variants, await enter_all(stack, processes), strict=True))
        direct = await stack.enter_async_context(Direct(fake.url))
        for warm_up in (True, *([False] * sizes.failover_runs)):
            sample = {name: await failover.sidecar_once(fake, s) for name, s in sidecars.items()}
            trip = await failover.round_trip(direct)
            if not warm_up:
                trips.append(trip)
                for name, value in sample.items():
                    times[name].append(value)
    rtt = median(trips)
    for name, values in times.items():
        added = median(values) - rtt
        section.numbers[f"failover_added_ms:{name}"] = added
        section.add(
            f"failover, {name}: added (429 → first delta, less the round trip)", f"{added:.2f} ms"
        )


async def run(sizes: Sizes) -> Section:
    section = Section(
        "Prototyped changes",
        "As-is and patched sidecars (`bench/variants.py`) alternate in one run: "
        f"throughput as in benchmark 2 ({sizes.throughput_deltas:,} deltas, "
        f"{sizes.throughput_rounds} rounds), failover as in benchmark 4 "
        f"({sizes.failover_runs} runs). Patches: `sse` (a lean SSE parser instead of "
        "httpx-sse), `builder` (message text joined once, not `+=` per delta), `status` "
        "(status updates deferred until the replay request is out).",
    )
    await _throughput(section, sizes)
    await _failover(section, sizes)
    return section
