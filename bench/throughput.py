"""2. Streaming throughput: provider deltas per second that reach the editor.

The fake streams N text deltas as fast as it can (one write of the whole
stream). Each contender reads them in turn, A B C D A B C D …; a rate is N over
the time from sending the request to the last token received. CPU per delta
adds the client's CPU time and, for llm-sidecar, the sidecar's: a figure that
the load of other processes on the machine disturbs far less than the rate.
"""

from __future__ import annotations

import gc
import time
from contextlib import AsyncExitStack

from bench.contenders import AnthropicSdk, Contender, Direct, LiteLlm, Sidecar, have_litellm
from bench.fakehost import FakeHost
from bench.lsp import cpu_seconds
from bench.sizes import Sizes
from bench.stats import Section, median
from bench.workload import KEYS, TokenSink, enter_all, reply_step

__all__ = ["measure", "run"]

GOAL_RATIO = 0.7
WARMUP_DELTAS = 200


async def measure(
    contenders: list[Contender], fake: FakeHost, n: int, rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]], int]:
    """(deltas/s per contender per round, CPU µs per delta likewise, bad streams)."""
    key = KEYS[0]
    await fake.script(key, [reply_step(WARMUP_DELTAS)] * len(contenders), reply_step(n))
    for contender in contenders:
        await contender.stream(key, TokenSink())
    rates: dict[str, list[float]] = {c.name: [] for c in contenders}
    cpu: dict[str, list[float]] = {c.name: [] for c in contenders}
    lost = 0
    for _ in range(rounds):
        for contender in contenders:
            gc.collect()
            pid = contender.server_pid
            cpu_before = time.process_time() + (cpu_seconds(pid) if pid else 0.0)
            sink = TokenSink()
            start = await contender.stream(key, sink)
            cpu_after = time.process_time() + (cpu_seconds(pid) if pid else 0.0)
            rates[contender.name].append(n / ((sink.last_ns - start) / 1e9))
            cpu[contender.name].append((cpu_after - cpu_before) / n * 1e6)
            lost += 0 if sink.exact(n) else 1
    return rates, cpu, lost


async def run(sizes: Sizes, *, litellm: bool = True) -> Section:
    n, rounds = sizes.throughput_deltas, sizes.throughput_rounds
    section = Section(
        "Streaming throughput",
        f"The fake streams {n:,} text deltas per request, as fast as it can. Each contender "
        f"streams in turn, {rounds} rounds alternated (A B C D A B C D …), after one "
        "warm-up stream each. Rate: provider deltas received (tokens counted, merges "
        "undone) over the time from sending the request to the last token. "
        "Ratios are medians of the per-round ratios to the direct consumer. CPU per "
        "delta: the client's process plus, for llm-sidecar, the sidecar's (not the fake's).",
    )
    async with FakeHost() as fake, AsyncExitStack() as stack:
        kinds: list[type[Contender]] = [Direct, Sidecar, AnthropicSdk]
        if litellm and have_litellm():
            kinds.append(LiteLlm)
        contenders = await enter_all(stack, [kind(fake.url) for kind in kinds])
        rates, cpu, lost = await measure(contenders, fake, n, rounds)
    direct = rates[Direct.name]
    sidecar_rate = median(rates[Sidecar.name])
    section.numbers["lost_streams"] = lost
    for name, values in rates.items():
        ratio = median([v / d for v, d in zip(values, direct, strict=True)])
        section.numbers[f"rate:{name}"] = median(values)
        section.numbers[f"ratio:{name}"] = ratio
        section.numbers[f"cpu_us:{name}"] = median(cpu[name])
        goal, met = "", None
        if name == Sidecar.name:
            goal, met = f"≥ {GOAL_RATIO}× direct", ratio >= GOAL_RATIO
        elif name != Direct.name:
            goal = "llm-sidecar ahead"
            met = sidecar_rate > median(values)
        section.add(
            f"{name}: deltas/s (CPU per delta)",
            f"{median(values):,.0f} ({ratio:.2f}× direct; {median(cpu[name]):.1f} µs)",
            goal,
            met,
        )
    section.add("streams with lost, repeated or reordered deltas", str(lost), "0", lost == 0)
    if not (litellm and have_litellm()):
        section.extra.append("LiteLLM is not installed: its row is missing.")
    return section
