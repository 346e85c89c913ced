"""9. Time to first delta: what a request waits for through the sidecar beyond a direct call.

From the bench writing the request (``sidecar/stream`` into the sidecar's stdin, or
the direct consumer's ``POST``) to the first text delta decoded in the bench process,
one clock (``perf_counter_ns``). Contenders, alternated every round after warm-ups,
all against the same fake in its own process with a 20-delta reply: the direct
consumer (httpx + httpx-sse in the bench process), llm-sidecar with 1 pooled key
and with 100 (added by ``llm-sidecar key add`` from stdin). Each keeps its
connection to the fake between requests, as an editor does. Added = the
sidecar's median less the direct one's (also the median of the per-round
differences, less disturbed by load drifting during the run).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from bench.contenders import Direct
from bench.fakehost import FakeHost
from bench.lsp import cpu_seconds
from bench.sizes import Sizes
from bench.stats import Section, median
from bench.workload import KEYS, SidecarProcess, TokenSink, reply_step, sidecar_env

__all__ = ["run"]

GOAL_ADDED_MS = 1.0
REPLY_DELTAS = 20
WARMUP = 3


def pool_keys(n: int) -> tuple[str, ...]:
    return KEYS[:1] + tuple(f"sk-ant-api03-bench-pool-fd-{i:06d}-0000000000" for i in range(1, n))


def pooled_home(root: Path, fake_url: str, n: int) -> Path:
    """A home whose anthropic pool holds ``n`` keys (the first one the fake's), added
    with ``llm-sidecar key add`` from stdin, as a user would."""
    home = root / f"home-{n}"
    subprocess.run(
        [sys.executable, "-m", "sidecar", "key", "add", "-p", "anthropic"],
        input="\n".join(pool_keys(n)),
        text=True,
        env=sidecar_env(home, fake_url, ()),
        check=True,
        capture_output=True,
        timeout=300,
    )
    return home


def _fig(values: list[float]) -> str:
    lo, hi, n = min(values), max(values), len(values)
    return f"median {median(values):.2f} ms (min {lo:.2f}, max {hi:.2f}, n={n})"


async def run(sizes: Sizes) -> Section:
    rounds = 2 if sizes.smoke else 41
    section = Section(
        "Time to first delta",
        __doc__.split("\n\n", 1)[1].replace("\n", " ").strip() if __doc__ else "",
    )
    names = ["direct", "1 key", "100 keys"]
    firsts: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names[1:]}  # sidecar CPU ms per request
    lost = 0
    async with FakeHost() as fake:
        await fake.script(KEYS[0], [], reply_step(REPLY_DELTAS))
        tmp = tempfile.TemporaryDirectory(prefix="bench-firstdelta-")
        root = Path(tmp.name)
        async with (
            Direct(fake.url) as direct,
            SidecarProcess(fake.url, (), home=pooled_home(root, fake.url, 1)) as one,
            SidecarProcess(fake.url, (), home=pooled_home(root, fake.url, 100)) as hundred,
        ):
            for r in range(-WARMUP, rounds):
                for name in names:
                    sink = TokenSink()
                    if name == "direct":
                        start = await direct.stream(KEYS[0], sink)
                    else:
                        sidecar = one if name == "1 key" else hundred
                        before = cpu_seconds(sidecar.pid)
                        start, _ = await sidecar.stream(sink)
                        if r >= 0:
                            cpu[name].append((cpu_seconds(sidecar.pid) - before) * 1e3)
                    lost += 0 if sink.exact(REPLY_DELTAS) else 1
                    if r >= 0:
                        firsts[name].append((sink.first_ns - start) / 1e6)
        tmp.cleanup()
    base = firsts["direct"]
    section.add("direct (httpx + httpx-sse): request → first delta", _fig(base))
    for name in names[1:]:
        ours = firsts[name]
        added = median(ours) - median(base)
        per_round = median([o - d for o, d in zip(ours, base, strict=True)])
        section.numbers[f"added_ms:{name}"] = added
        section.add(
            f"llm-sidecar, {name} in the pool: request → first delta",
            f"{_fig(ours)}; added {added:.2f} ms (per-round median {per_round:.2f} ms)",
            f"added ≤ {GOAL_ADDED_MS:.0f} ms",
            added <= GOAL_ADDED_MS,
        )
        section.numbers[f"cpu_ms:{name}"] = median(cpu[name])
        section.add(
            f"llm-sidecar, {name}: its CPU time per request (all threads, whole "
            f"{REPLY_DELTAS}-delta stream; load disturbs it far less than the wall clock)",
            _fig(cpu[name]),
        )
    section.numbers["lost_streams"] = lost
    section.add("streams with lost, repeated or reordered deltas", str(lost), "0", lost == 0)
    return section
