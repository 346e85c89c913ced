"""8. The store: pool-size scaling, sidecars sharing a home, status propagation, idle, CLI.

Every figure runs real processes on this machine's cores, shared with the bench
itself and whatever else runs; contenders are alternated within one run.

- Pool scaling: one sidecar over stdio, its home holding 1, 10, 100 or 1,000 pooled
  keys (added by ``llm-sidecar key add`` from stdin, itself timed: spawn → exit).
  ``status``: ``sidecar/status`` request written → response parsed, in the bench
  process. ``keyAdd``: ``sidecar/keyAdd`` of one new key, same clock. Rotation:
  ``sidecar/stream`` against the fake whose current key answers 429 and the next one
  streams, request written → result parsed (two upstream requests, a rate limit
  recorded and a rotation made). Pool sizes alternate each round.
- Sidecars on one home: 1, 4 and 8 sidecars, each streaming in a loop with failover
  (``sidecar/keyReset``, then a stream whose first key answers 429); first delta =
  request written → first text delta received, per stream, p90 over all streams of
  all rounds.
- Status propagation: two sidecars on one home; the bench records a rate limit in
  the store (as the CLI or a third sidecar would), in a thread, and times from the
  start of that write to the ``sidecar/didChangeStatus`` of the other sidecar arriving.
- Idle wakeups: context switches (voluntary and not, every thread) of an idle
  sidecar over a window after its start-up settled, per second.
- CLI: ``llm-sidecar status`` (a home of one key, text output) vs ``python -c pass``,
  spawn → exit, alternated.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from bench.fakehost import FakeHost
from bench.sizes import Sizes
from bench.stats import Section, median, percentile
from bench.workload import (
    KEYS,
    SidecarProcess,
    TokenSink,
    enter_all,
    failover_streams,
    reply_step,
    sidecar_env,
)

__all__ = ["run"]

POOL_SIZES = (1, 10, 100, 1000)
REPLY_DELTAS = 20
GOAL_SCALING = 2.0
GOAL_BULK_S = 1.0
GOAL_SHARED = 1.5
GOAL_PROPAGATION_MS = 50.0
GOAL_WAKEUPS = 1.0
GOAL_CLI = 8.0


def _ms(ns: int) -> float:
    return ns / 1e6


def _fig(values: list[float], unit: str = "ms") -> str:
    if not values:
        return "n=0"
    return (
        f"median {median(values):.2f} {unit} (min {min(values):.2f}, max {max(values):.2f},"
        f" n={len(values)})"
    )


def _pool_keys(n: int, tag: str) -> list[str]:
    return [f"sk-ant-api03-bench-pool-{tag}-{i:06d}-000000000" for i in range(n)]


def _cli(home: Path, fake_url: str, *args: str, stdin: str = "") -> float:
    """Seconds from spawn to exit of ``llm-sidecar args``."""
    env = sidecar_env(home, fake_url, ())
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sidecar", *args],
        input=stdin,
        text=True,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return time.perf_counter() - started


def _recorder(figures: dict[tuple[int, str], list[float]], n: int) -> Callable[[str, float], None]:
    def record(op: str, value: float) -> None:
        figures.setdefault((n, op), []).append(value)

    return record


async def _request_ms(sidecar: SidecarProcess, method: str, params: Any) -> float:
    started = time.perf_counter_ns()
    await sidecar.request(method, params)
    return _ms(time.perf_counter_ns() - started)


async def _scaling(fake: FakeHost, sizes: Sizes, section: Section) -> None:
    rounds = 2 if sizes.smoke else 7
    pool_sizes = (1, 10) if sizes.smoke else POOL_SIZES
    bulk: dict[int, float] = {}
    figures: dict[tuple[int, str], list[float]] = {}
    async with AsyncExitStack() as stack:
        sidecars: dict[int, SidecarProcess] = {}
        for n in pool_sizes:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-store-"))
            home = Path(tmp) / "home"
            keys = _pool_keys(n, f"n{n}")
            bulk[n] = await asyncio.to_thread(
                _cli, home, fake.url, "key", "add", "-p", "anthropic", stdin="\n".join(keys)
            )
            # The first two keys of every pool: the first answers 429, the second streams.
            await fake.script(keys[0], [], {"kind": "rate_limited", "retry_after": 30})
            if n > 1:
                await fake.script(keys[1], [], reply_step(REPLY_DELTAS))
            sidecars[n] = await stack.enter_async_context(
                SidecarProcess(fake.url, keys=(), home=home)
            )
        for r in range(-1, rounds):  # round -1 warms each sidecar up, unrecorded
            for n in pool_sizes:
                sidecar = sidecars[n]
                await sidecar.request("sidecar/keyReset", {"provider": "anthropic"})
                status = await _request_ms(sidecar, "sidecar/status", {"provider": "anthropic"})
                record = (lambda *_: None) if r < 0 else _recorder(figures, n)
                record("status", status)
                new = f"sk-ant-api03-bench-added-n{n}-r{r:03d}-0000000000"
                add = await _request_ms(
                    sidecar, "sidecar/keyAdd", {"provider": "anthropic", "key": new}
                )
                record("keyAdd", add)
                if n > 1:
                    sink = TokenSink()
                    start, result = await sidecar.stream(sink)
                    if result["attempts"] != 2 or not sink.exact(REPLY_DELTAS):
                        raise RuntimeError("the rotation run did not fail over cleanly")
                    done = time.perf_counter_ns()
                    record("rotation", _ms(done - start))
    for op in ("status", "keyAdd", "rotation"):
        base_n = 1 if op != "rotation" else 10
        base = figures.get((base_n, op))
        if not base:
            continue
        for n in pool_sizes:
            values = figures.get((n, op))
            if not values:
                continue
            ratio = median(values) / median(base)
            big = n == max(pool_sizes)
            section.add(
                f"`{op}` with {n} key(s)",
                f"{_fig(values)}; {ratio:.2f}× the {base_n}-key figure",
                f"≤ {GOAL_SCALING:.0f}× at 1,000 keys" if big else "",
                ratio <= GOAL_SCALING if big else None,
            )
            section.numbers[f"{op}_{n}_ms"] = median(values)
    for n, seconds in bulk.items():
        big = n == max(pool_sizes)
        section.add(
            f"`key add` of {n} key(s) from stdin into an empty home (spawn → exit, n=1)",
            f"{seconds:.2f} s",
            f"< {GOAL_BULK_S:.0f} s for 1,000" if big else "",
            seconds < GOAL_BULK_S if big else None,
        )


async def _shared_home(fake: FakeHost, sizes: Sizes, section: Section) -> None:
    counts = (1, 2) if sizes.smoke else (1, 4, 8)
    streams_each = 2 if sizes.smoke else 8
    rounds = 1 if sizes.smoke else 3
    await fake.script(KEYS[0], [], {"kind": "rate_limited", "retry_after": 30})
    await fake.script(KEYS[1], [], reply_step(REPLY_DELTAS))
    firsts: dict[int, list[float]] = {c: [] for c in counts}
    failovers: dict[int, int] = dict.fromkeys(counts, 0)
    for _ in range(rounds):
        for count in counts:
            with tempfile.TemporaryDirectory(prefix="bench-shared-") as tmp:
                home = Path(tmp) / "home"
                async with AsyncExitStack() as stack:
                    sidecars = await enter_all(
                        stack, [SidecarProcess(fake.url, KEYS, home=home) for _ in range(count)]
                    )
                    got, failed = await failover_streams(sidecars, streams_each, REPLY_DELTAS)
                    firsts[count] += got
                    failovers[count] += failed
    one = percentile(firsts[counts[0]], 90)
    for count in counts:
        p90 = percentile(firsts[count], 90)
        last = count == counts[-1]
        section.add(
            f"first delta p90, {count} sidecar(s) on one home, each streaming with failover",
            f"p90 {p90:.1f} ms, median {median(firsts[count]):.1f} ms (min"
            f" {min(firsts[count]):.1f}, max {max(firsts[count]):.1f}; n={len(firsts[count])}"
            f" streams, {failovers[count]} failed over); {p90 / one:.2f}× one sidecar's",
            f"≤ {GOAL_SHARED}× one sidecar's with 8" if last and not sizes.smoke else "",
            (p90 / one <= GOAL_SHARED) if last and not sizes.smoke else None,
        )
        section.numbers[f"shared_{count}_p90_ms"] = p90


async def _propagation(fake: FakeHost, sizes: Sizes, section: Section) -> None:
    from sidecar.rotation.classify import Failure, FailureClass
    from sidecar.rotation.keypool import KeyPool
    from sidecar.store import Store

    runs = 3 if sizes.smoke else 21
    delays: list[float] = []
    write_ms: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-prop-") as tmp:
        home = Path(tmp) / "home"
        keys = _pool_keys(3, "prop")
        await asyncio.to_thread(
            _cli, home, fake.url, "key", "add", "-p", "anthropic", stdin="\n".join(keys)
        )
        async with AsyncExitStack() as stack:
            _, watcher = await enter_all(
                stack, [SidecarProcess(fake.url, (), home=home) for _ in range(2)]
            )
            seen = watcher.record_statuses()
            await watcher.request("sidecar/status", {})  # its feed is running
            keypool = KeyPool(Store(home), env={})
            for _ in range(runs):
                await asyncio.to_thread(keypool.reset, "anthropic")
                current = keypool.acquire("anthropic").credential
                await asyncio.sleep(0.3)  # the notifications of these writes have come
                before = len(seen)
                failure = Failure(FailureClass.RATE_LIMIT, 429, None, "", time.time() + 600, False)

                def write(current: Any = current, failure: Any = failure) -> tuple[int, int]:
                    started = time.perf_counter_ns()
                    keypool.report_failure(current, failure)
                    return started, time.perf_counter_ns()

                # In a thread: this loop must read the notification the moment it comes.
                written, returned = await asyncio.to_thread(write)
                write_ms.append(_ms(returned - written))
                rotated = "2/3 (rotated)"  # the second key of three, after the 429
                for _ in range(600):
                    if any(rotated in p.get("text", "") for _, p in seen[before:]):
                        break
                    await asyncio.sleep(0.005)
                arrived = next((t for t, p in seen[before:] if rotated in p.get("text", "")), None)
                if arrived is None:
                    raise RuntimeError("the other sidecar never showed the rotation")
                delays.append(_ms(max(arrived - written, 0)))
    p50 = median(delays)
    section.add(
        "status propagation: a rate limit's store write begins (bench process) → the other"
        " sidecar's `didChangeStatus` arrives (same clock)",
        f"{_fig(delays)}; the write itself (lock, read, two fsyncs) took {_fig(write_ms)}",
        f"p50 ≤ {GOAL_PROPAGATION_MS:.0f} ms",
        p50 <= GOAL_PROPAGATION_MS,
    )
    section.numbers["propagation_p50_ms"] = p50


def _switches(pid: int) -> int:
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/status") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
    return total


async def _idle(fake: FakeHost, sizes: Sizes, section: Section) -> None:
    if not os.path.isdir("/proc/self/task"):
        section.add("idle wakeups", "not measured: no /proc on this platform")
        return
    window = 2.0 if sizes.smoke else 20.0
    async with SidecarProcess(fake.url, KEYS) as sidecar:
        await sidecar.request("sidecar/status", {})
        await asyncio.sleep(1.0)  # start-up work after the first answer settles
        before = _switches(sidecar.pid)
        await asyncio.sleep(window)
        rate = (_switches(sidecar.pid) - before) / window
    section.add(
        f"idle sidecar: context switches per second, all threads, over {window:.0f} s (n=1)",
        f"{rate:.2f}/s",
        f"≤ {GOAL_WAKEUPS:.0f}/s",
        rate <= GOAL_WAKEUPS,
    )
    section.numbers["idle_wakeups_per_s"] = rate


def _spawn_s(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=60)
    return time.perf_counter() - started


async def _cli_status(fake: FakeHost, sizes: Sizes, section: Section) -> None:
    runs = 3 if sizes.smoke else 21
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        home = Path(tmp) / "home"
        await asyncio.to_thread(
            _cli, home, fake.url, "key", "add", "-p", "anthropic", stdin=_pool_keys(1, "cli")[0]
        )
        env = sidecar_env(home, fake.url, ())
        bare, status = [], []
        for _ in range(runs):
            bare.append(await asyncio.to_thread(_spawn_s, [sys.executable, "-c", "pass"], env))
            status.append(
                await asyncio.to_thread(_spawn_s, [sys.executable, "-m", "sidecar", "status"], env)
            )
    ratio = median(status) / median(bare)
    section.add(
        "`llm-sidecar status` (spawn → exit) vs `python -c pass`, alternated",
        f"{_fig([s * 1000 for s in status])} vs {_fig([s * 1000 for s in bare])}: {ratio:.1f}×",
        f"≤ {GOAL_CLI:.0f}×",
        ratio <= GOAL_CLI,
    )
    section.numbers["cli_status_ratio"] = ratio


async def run(sizes: Sizes) -> Section:
    section = Section("Store", (__doc__ or "").split("\n\n", 1)[1].strip())
    async with FakeHost() as fake:
        await _scaling(fake, sizes, section)
        await _shared_home(fake, sizes, section)
        await _propagation(fake, sizes, section)
        await _idle(fake, sizes, section)
        await _cli_status(fake, sizes, section)
    return section
