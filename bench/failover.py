"""4. Failover: key 1 answers 429, key 2 streams.

Failover time: from the fake deciding the 429 (its clock) to the first delta of
key 2 reaching the caller (same clock). It holds one upstream round trip that
no failover can avoid (ask key 2, get its first delta), measured bare with
httpx: request sent → first delta, on a warm connection. Added = failover time
less that round trip. llm-sidecar (pool of the two keys, ``sidecar/keyReset``
before each run so key 1 is tried first) and LiteLLM's Router (two deployments
of one model, ``order`` 1 and 2, ``num_retries=2``, a new Router per run so that
its cooldowns start empty) alternate with the bare round trip.
"""

from __future__ import annotations

import time
from typing import Any

from bench.contenders import Direct, have_litellm, import_litellm
from bench.fakehost import FakeHost
from bench.sizes import Sizes
from bench.stats import Section, median
from bench.workload import KEYS, MODEL, SidecarProcess, TokenSink, reply_step

__all__ = ["REPLY_DELTAS", "round_trip", "run", "script", "sidecar_once"]

GOAL_ADDED_MS = 5.0
REPLY_DELTAS = 20


async def script(fake: FakeHost) -> None:
    await fake.script(KEYS[0], [], {"kind": "rate_limited", "retry_after": 30})
    await fake.script(KEYS[1], [], reply_step(REPLY_DELTAS))


async def _time_from_429(fake: FakeHost, since: int, first_ns: int) -> float:
    """ms from the 429 of this run to ``first_ns``."""
    records = await fake.records(since)
    limited = [r for r in records if r["status"] == 429]
    if len(limited) != 1 or records[-1]["status"] != 200:
        raise RuntimeError(f"expected one 429 then a 200, got {[r['status'] for r in records]}")
    return float(first_ns - limited[0]["finish_ns"]) / 1e6


async def sidecar_once(fake: FakeHost, sidecar: SidecarProcess) -> float:
    await sidecar.request("sidecar/keyReset", {"provider": "anthropic"})
    since = len(await fake.records())
    sink = TokenSink()
    _, result = await sidecar.stream(sink)
    if result["attempts"] != 2 or not sink.exact(REPLY_DELTAS):
        raise RuntimeError(f"the sidecar did not fail over cleanly: {result['attempts']} attempts")
    return await _time_from_429(fake, since, sink.first_ns)


def _router(litellm: Any, url: str) -> Any:
    deployments = [
        {
            "model_name": "claude",
            "litellm_params": {
                "model": f"anthropic/{MODEL}",
                "api_key": key,
                "api_base": url,
                "order": order,
            },
        }
        for order, key in enumerate(KEYS, start=1)
    ]
    return litellm.Router(model_list=deployments, num_retries=2, retry_after=0)


async def _litellm_once(fake: FakeHost, litellm: Any) -> float:
    router = _router(litellm, fake.url)
    since = len(await fake.records())
    sink = TokenSink()
    response = await router.acompletion(
        model="claude",
        messages=[{"role": "user", "content": "go"}],
        max_tokens=4096,
        stream=True,
    )
    async for chunk in response:
        text = chunk.choices[0].delta.content
        if text:
            sink.add(text, time.perf_counter_ns())
    if not sink.exact(REPLY_DELTAS):
        raise RuntimeError("LiteLLM's reply was incomplete")
    return await _time_from_429(fake, since, sink.first_ns)


async def round_trip(direct: Direct) -> float:
    sink = TokenSink()
    start = await direct.stream(KEYS[1], sink)
    return (sink.first_ns - start) / 1e6


async def run(sizes: Sizes, *, litellm: bool = True) -> Section:
    runs = sizes.failover_runs
    use_litellm = litellm and have_litellm()
    section = Section(
        "Failover",
        f"Key 1 answers 429 (`retry-after: 30`), key 2 streams {REPLY_DELTAS} deltas. "
        f"{runs} runs of each, alternated, after one warm-up each. "
        + (__doc__ or "").split("\n\n", 1)[1].replace("\n", " ").strip(),
    )
    times: dict[str, list[float]] = {"llm-sidecar": [], "round trip": []}
    if use_litellm:
        times["LiteLLM Router"] = []
    async with FakeHost() as fake:
        await script(fake)
        lite = import_litellm() if use_litellm else None
        async with SidecarProcess(fake.url, KEYS) as sidecar, Direct(fake.url) as direct:
            for warm_up in (True, *([False] * runs)):
                sample = {
                    "llm-sidecar": await sidecar_once(fake, sidecar),
                    "round trip": await round_trip(direct),
                }
                if lite is not None:
                    sample["LiteLLM Router"] = await _litellm_once(fake, lite)
                if not warm_up:
                    for name, value in sample.items():
                        times[name].append(value)
    rtt = median(times["round trip"])
    section.add("bare round trip (httpx: request → first delta)", f"{rtt:.2f} ms")
    ours = median(times["llm-sidecar"]) - rtt
    section.numbers.update(round_trip_ms=rtt, sidecar_added_ms=ours)
    section.add(
        f"llm-sidecar: 429 → first delta {median(times['llm-sidecar']):.2f} ms, added",
        f"{ours:.2f} ms",
        f"≤ {GOAL_ADDED_MS:.0f} ms",
        ours <= GOAL_ADDED_MS,
    )
    if use_litellm:
        theirs = median(times["LiteLLM Router"]) - rtt
        section.numbers["litellm_added_ms"] = theirs
        section.add(
            f"LiteLLM Router: 429 → first delta {median(times['LiteLLM Router']):.2f} ms, added",
            f"{theirs:.2f} ms ({theirs / ours:.1f}× llm-sidecar's)"
            if ours > 0
            else f"{theirs:.2f} ms",
            "llm-sidecar faster",
            ours < theirs,
        )
    else:
        section.extra.append("LiteLLM is not installed: its row is missing.")
    return section
