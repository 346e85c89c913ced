"""10. CPU per delta with everything that relays and parses on one core.

Each contender runs in a worker process pinned to core 0 (``sched_setaffinity``, as
``taskset -c 0`` does; the sidecar it spawns inherits the mask): the direct consumer
(httpx + httpx-sse, every event's JSON parsed) against llm-sidecar plus an editor
that parses every notification (:mod:`bench.lsp`: each frame's JSON decoded). The
fake runs in its own process on core 1, so only the contenders share core 0. CPU
per delta = user + system CPU time of the worker and, for llm-sidecar, of the
sidecar process, from before the request to the end of the stream, over the
number of provider deltas. Two rates: a burst (the fake writes the whole stream
at once) and a real one, 80 deltas/s (one event per network read, so no merging).
Workers alternate, direct first, each streaming ``runs`` times after a warm-up.

``python -m bench.pinned URL KIND INTERVAL DELTAS RUNS`` (KIND ``direct`` or
``sidecar``) prints one JSON list of µs per delta.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from bench.fakehost import FakeHost
from bench.lsp import REPO_ROOT, cpu_seconds
from bench.sizes import Sizes
from bench.stats import Section, median
from bench.workload import KEYS, SidecarProcess, TokenSink, reply_step

__all__ = ["run"]

GOAL_RATIO = 1.1
CORE = 0
RATES = {"burst": 0.0, "80 deltas/s": 1 / 80}


async def _worker(url: str, kind: str, n: int, runs: int) -> list[float]:
    out = []
    if kind == "direct":
        from bench.contenders import Direct

        async with Direct(url) as direct:
            for run in range(runs + 1):  # the first is a warm-up
                before = time.process_time()
                sink = TokenSink()
                await direct.stream(KEYS[0], sink)
                if not sink.exact(n):
                    raise RuntimeError("the direct stream lost deltas")
                if run:
                    out.append((time.process_time() - before) / n * 1e6)
        return out
    async with SidecarProcess(url, KEYS[:1]) as sidecar:
        for run in range(runs + 1):
            before = time.process_time() + cpu_seconds(sidecar.pid)
            sink = TokenSink()
            await sidecar.stream(sink)
            if not sink.exact(n):
                raise RuntimeError("the sidecar stream lost deltas")
            if run:
                spent = time.process_time() + cpu_seconds(sidecar.pid) - before
                out.append(spent / n * 1e6)
    return out


async def _measure(url: str, kind: str, n: int, runs: int) -> list[float]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.pinned", url, kind, str(n), str(runs), stdout=-1, cwd=REPO_ROOT
    )
    stdout, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"pinned worker {kind} failed ({proc.returncode})")
    values: list[float] = json.loads(stdout)
    return values


async def run(sizes: Sizes) -> Section:
    rounds, runs = (1, 1) if sizes.smoke else (3, 3)
    counts = {"burst": 200 if sizes.smoke else 20_000, "80 deltas/s": 20 if sizes.smoke else 240}
    section = Section("CPU per delta on one core", (__doc__ or "").split("\n\n")[1])
    cores = sorted(os.sched_getaffinity(0))
    if CORE not in cores or len(cores) < 2:
        section.add("pinned CPU per delta", "skipped: needs cores 0 and 1")
        return section
    async with FakeHost() as fake:
        fake_core = {c for c in cores if c != CORE}
        os.sched_setaffinity(fake.pid, fake_core)
        for rate, interval in RATES.items():
            n = counts[rate]
            await fake.script(KEYS[0], [], reply_step(n, interval))
            cpu: dict[str, list[float]] = {"direct": [], "sidecar": []}
            for _ in range(rounds):
                for kind in cpu:
                    cpu[kind] += await _measure(fake.url, kind, n, runs)
            direct, ours = median(cpu["direct"]), median(cpu["sidecar"])
            ratio = ours / direct
            section.numbers[f"ratio:{rate}"] = ratio
            lo, hi = min(cpu["sidecar"]), max(cpu["sidecar"])
            section.add(
                f"{rate}, {n:,} deltas per stream: llm-sidecar + parsing editor vs direct",
                f"{ours:.1f} µs (min {lo:.1f}, max {hi:.1f}) vs {direct:.1f} µs "
                f"(min {min(cpu['direct']):.1f}, max {max(cpu['direct']):.1f}), "
                f"n={len(cpu['sidecar'])} each: {ratio:.2f}×",
                f"≤ {GOAL_RATIO}× direct",
                ratio <= GOAL_RATIO,
            )
    return section


def main(argv: list[str]) -> int:
    url, kind, n, runs = argv
    os.sched_setaffinity(0, {CORE})  # children (the sidecar) inherit it
    print(json.dumps(asyncio.run(_worker(url, kind, int(n), int(runs)))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
