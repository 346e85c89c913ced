"""9. Team state on Redis: propagation between machines, and what it costs a request.

Every figure runs real processes on this machine's cores (two, shared with the
bench, the fake, a real redis-server on loopback and whatever else runs); the
compared items alternate within one run. "Machines" are homes of their own.

- Propagation: two sidecars on two homes, one Redis. The bench process, standing
  for a third machine, records a rate limit in its own home through a key pool
  linked to the team (in a thread); clock from the start of that store write to the
  other sidecar's ``sidecar/didChangeStatus`` showing the rotation (same clock).
  Path: local write → publish → Redis → pub/sub → merge into the other home's
  file → its status feed.
- Failover with the state in files vs on Redis: 1 and 8 sidecars, each streaming
  in a loop (``sidecar/keyReset``, then a stream whose first key answers 429 until
  the fake's reset); first delta = request written → first text delta, p90 over
  every stream of every round. Files: the sidecars share one home. Redis: each has
  a home of its own and one namespace, so a teammate's 429 reaches the others by
  Redis alone (which then skip the key: the failover count says how many did not).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from bench.fakehost import FakeHost
from bench.sizes import Sizes
from bench.stats import Section, median, percentile
from bench.workload import (
    KEYS,
    SidecarProcess,
    enter_all,
    failover_streams,
    reply_step,
    sidecar_env,
)

__all__ = ["run"]

REPLY_DELTAS = 20
GOAL_PROPAGATION_MS = 50.0
GOAL_REDIS_VS_FILES = 1.1


class TeamSidecar(SidecarProcess):
    """A sidecar whose rotation state is shared through ``url`` (None: files only)."""

    def __init__(self, fake_url: str, url: str | None, home: Path | None = None) -> None:
        super().__init__(fake_url, KEYS, home=home)
        self.url = url

    def env(self) -> dict[str, str]:
        env = sidecar_env(self.home, self.fake_url, self.keys)
        if self.url is not None:
            env.update(LLM_SIDECAR_STATE=self.url, LLM_SIDECAR_STATE_NAMESPACE="bench")
        return env


def _fig(values: list[float]) -> str:
    return (
        f"median {median(values):.1f} ms (min {min(values):.1f}, max {max(values):.1f};"
        f" n={len(values)})"
    )


async def _propagation(fake: FakeHost, url: str, sizes: Sizes, section: Section) -> None:
    from sidecar.rotation.classify import Failure, FailureClass
    from sidecar.rotation.keypool import KeyPool
    from sidecar.rotation.sharing import start_sharing
    from sidecar.settings import Settings
    from sidecar.store import Store

    runs = 3 if sizes.smoke else 21
    delays: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-team-") as tmp:
        async with AsyncExitStack() as stack:
            _, watcher = await enter_all(
                stack, [TeamSidecar(fake.url, url, Path(tmp) / h) for h in ("a", "b")]
            )
            seen = watcher.record_statuses()
            home = Path(tmp) / "c"
            env = TeamSidecar(fake.url, url, home).env()
            settings = Settings.load(home, env)
            keypool = KeyPool(Store(home), settings.env)
            links: list[str] = []
            team = start_sharing(keypool, settings.team, links.append)
            assert team is not None
            for _ in range(400):  # until the bench's own link is up
                if team.link == "online":
                    break
                await asyncio.sleep(0.01)
            try:
                for _ in range(runs):
                    # A fresh cooldown each run: the watcher must not know it yet.
                    for sidecar in (watcher,):
                        await sidecar.request("sidecar/keyReset", {"provider": "anthropic"})
                    await asyncio.to_thread(keypool.reset, "anthropic")
                    current = keypool.acquire("anthropic").credential
                    await asyncio.sleep(0.3)  # the notifications of the resets have come
                    before = len(seen)
                    until = time.time() + 600 + len(delays)  # later each run: always news
                    failure = Failure(FailureClass.RATE_LIMIT, 429, None, "", until, False)

                    def write(current: Any = current, failure: Any = failure) -> int:
                        started = time.perf_counter_ns()
                        keypool.report_failure(current, failure)
                        return started

                    written = await asyncio.to_thread(write)
                    rotated = "(rotated)"
                    for _ in range(1000):
                        if any(rotated in p.get("text", "") for _, p in seen[before:]):
                            break
                        await asyncio.sleep(0.002)
                    arrived = next((t for t, p in seen[before:] if rotated in p["text"]), None)
                    if arrived is None:
                        raise RuntimeError("the other machine never showed the rotation")
                    delays.append((arrived - written) / 1e6)
            finally:
                await team.aclose()
    p50 = median(delays)
    section.add(
        "team propagation: a rate limit's store write begins on one machine (bench) → another"
        " machine's sidecar sends `didChangeStatus` with the rotation (same clock)",
        _fig(delays),
        f"p50 ≤ {GOAL_PROPAGATION_MS:.0f} ms",
        p50 <= GOAL_PROPAGATION_MS,
    )
    section.numbers["team_propagation_p50_ms"] = p50


async def _failover(fake: FakeHost, url: str, sizes: Sizes, section: Section) -> None:
    counts = (1, 2) if sizes.smoke else (1, 8)
    streams_each = 2 if sizes.smoke else 8
    rounds = 1 if sizes.smoke else 3
    await fake.script(KEYS[0], [], {"kind": "rate_limited", "retry_after": 30})
    await fake.script(KEYS[1], [], reply_step(REPLY_DELTAS))
    firsts: dict[tuple[str, int], list[float]] = {}
    failovers: dict[tuple[str, int], int] = {}
    modes: tuple[str, ...] = ("files", "redis")
    for _ in range(rounds):
        for count in counts:
            for mode in modes:  # alternated within each round
                key = (mode, count)
                firsts.setdefault(key, [])
                failovers.setdefault(key, 0)
                with tempfile.TemporaryDirectory(prefix="bench-team-") as tmp:
                    shared = Path(tmp) / "home"
                    homes = [
                        shared if mode == "files" else Path(tmp) / f"home{i}" for i in range(count)
                    ]
                    team_url = url if mode == "redis" else None
                    async with AsyncExitStack() as stack:
                        sidecars = await enter_all(
                            stack, [TeamSidecar(fake.url, team_url, h) for h in homes]
                        )
                        got, failed = await failover_streams(sidecars, streams_each, REPLY_DELTAS)
                        firsts[key] += got
                        failovers[key] += failed
    for count in counts:
        files, redis = firsts["files", count], firsts["redis", count]
        ratio = percentile(redis, 90) / percentile(files, 90)
        for mode, values in (("files", files), ("redis", redis)):
            section.add(
                f"first delta p90, {count} sidecar(s), each streaming with failover,"
                f" state in {'one home' if mode == 'files' else 'Redis, a home each'}",
                f"p90 {percentile(values, 90):.1f} ms, {_fig(values)};"
                f" {failovers[mode, count]} failed over",
                f"Redis ≤ {GOAL_REDIS_VS_FILES}× files" if mode == "redis" else "",
                (ratio <= GOAL_REDIS_VS_FILES) if mode == "redis" and not sizes.smoke else None,
            )
        section.numbers[f"team_ratio_{count}"] = ratio


async def run(sizes: Sizes) -> Section:
    from sidecar.fake.redis_server import REDIS, RedisServer

    section = Section("Team state", (__doc__ or "").split("\n\n", 1)[1].strip(), block="team")
    if REDIS is None:
        section.add("team state", "skipped: redis-server is not installed")
        return section
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        server = RedisServer(Path(tmp)).start()
        try:
            async with FakeHost() as fake:
                await _propagation(fake, server.url, sizes, section)
                await _failover(fake, server.url, sizes, section)
        finally:
            server.stop()
    return section
