"""Rotation and status cost with headroom tracking, side by side with the code before it.

``python -m bench.headroom --before DIR [--rounds N]`` runs one in-process workload on
the key pool in two source trees: ``DIR`` (a checkout from before headroom tracking,
e.g. the main branch) and this one, alternating rounds in fresh processes so that
both see the same machine load. Per round, each process times on a home of 10 pooled
Anthropic keys:

- ``success``: ``acquire`` + ``report_success``, the hot path of every answer. This
  tree also reads the answer's 12 ``anthropic-ratelimit-*`` headers into windows
  (as the provider layer does) and records them with the request's model.
- ``failover``: ``acquire``, a 429 recorded (with its headers; ``report_failure`` is a
  store transaction), ``acquire`` again (the rotation), ``report_success``, and
  ``reset``: one rate-limited request end to end, as far as the pool sees it.
- ``status``: ``status("anthropic")``, the pool's 10 credentials described; in this
  tree each carries the windows its answers reported.

The figure is the median per operation over all rounds, and after/before. The
store's own costs (flock, fsync) dominate ``failover``; expect noise on a shared
machine.

``--end-to-end`` adds what an editor sees, the way ``bench/store.py`` measures it: one
``python -m sidecar`` per tree over stdio (each a home of 10 pooled keys, against one
fake whose answers carry the 12 rate-limit headers), alternated per round:
``sidecar/status`` (request written → result parsed) and a rotation, ``sidecar/stream``
whose first key answers 429 and the second streams 20 deltas (request written →
result parsed), after ``sidecar/keyReset``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

HERE = Path(__file__).resolve().parent.parent

# Runs inside the measured tree: only the pool API both trees share, plus headroom
# where the tree has it.
WORKLOAD = r"""
import inspect, json, sys, tempfile, time
from pathlib import Path
from sidecar.rotation.keypool import KeyPool
from sidecar.rotation.classify import parse_failure
from sidecar.store import Store

ITER = int(sys.argv[1])
home = Path(tempfile.mkdtemp()) / "home"
pool = KeyPool(Store(home), env={})
pool.add_keys("anthropic", [f"sk-ant-api03-bench{i:04d}" + "x" * 80 for i in range(10)])
headroom = "windows" in inspect.signature(pool.report_success).parameters
if headroom:
    from sidecar.rotation.headroom import read_windows
reset = "2030-01-01T00:00:00Z"
headers = {}
for name, limit, left in (("requests", 4000, 3990), ("tokens", 400000, 390000),
                          ("input-tokens", 300000, 295000), ("output-tokens", 100000, 95000)):
    headers.update({f"anthropic-ratelimit-{name}-limit": str(limit),
                    f"anthropic-ratelimit-{name}-remaining": str(left),
                    f"anthropic-ratelimit-{name}-reset": reset})
headers.update({"retry-after": "3", "content-type": "application/json"})
body = b'{"type":"error","error":{"type":"rate_limit_error","message":"Too many requests"}}'
MODEL = "claude-sonnet-4-5"

def take():
    if headroom:
        return pool.acquire("anthropic", (), MODEL).credential
    return pool.acquire("anthropic").credential

def success():
    cred = take()
    if headroom:
        pool.report_success(cred, model=MODEL, windows=read_windows(headers, time.time()))
    else:
        pool.report_success(cred)

def failover():
    cred = take()
    failure = parse_failure(429, headers, body, time.time())
    if headroom:
        pool.report_failure(cred, failure, MODEL)
        nxt = pool.acquire("anthropic", (), MODEL).credential
        pool.report_success(nxt, model=MODEL, windows=read_windows(headers, time.time()))
    else:
        pool.report_failure(cred, failure)
        nxt = pool.acquire("anthropic").credential
        pool.report_success(nxt)
    pool.reset("anthropic")

def status():
    pool.status("anthropic")

# Every key answers once first, so that status describes ten keys with windows.
for cred in pool.pool("anthropic"):
    if headroom:
        pool.report_success(cred, model=MODEL, windows=read_windows(headers, time.time()))
    else:
        pool.report_success(cred)
pool.save_usage()
out = {}
for name, op, n in (("success", success, ITER), ("failover", failover, max(1, ITER // 10)),
                    ("status", status, ITER)):
    op()
    t0 = time.perf_counter_ns()
    for _ in range(n):
        op()
    out[name] = (time.perf_counter_ns() - t0) / n / 1e3
print(json.dumps(out))
"""


def _round(tree: Path, iterations: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        env["LLM_SIDECAR_HOME"] = tmp
        done = subprocess.run(
            [sys.executable, "-c", WORKLOAD, str(iterations)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp,
        )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def _e2e_headers() -> dict[str, str]:
    reset = "2030-01-01T00:00:00Z"
    out = {}
    for name, limit, left in (
        ("requests", 4000, 3990),
        ("tokens", 400000, 390000),
        ("input-tokens", 300000, 295000),
        ("output-tokens", 100000, 95000),
    ):
        out[f"anthropic-ratelimit-{name}-limit"] = str(limit)
        out[f"anthropic-ratelimit-{name}-remaining"] = str(left)
        out[f"anthropic-ratelimit-{name}-reset"] = reset
    return out


async def _end_to_end(before: Path, rounds: int) -> dict[str, dict[str, list[float]]]:
    from bench.fakehost import FakeHost
    from bench.workload import SidecarProcess, TokenSink, reply_step, sidecar_env

    class TreeSidecar(SidecarProcess):
        """The sidecar of one source tree."""

        def __init__(self, tree: Path, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.tree = tree

        def env(self) -> dict[str, str]:
            return {**super().env(), "PYTHONPATH": str(self.tree)}

    figures: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    async with FakeHost() as fake:
        sidecars: dict[str, TreeSidecar] = {}
        homes = []
        try:
            for label, tree in (("before", before), ("after", HERE)):
                tmp = tempfile.TemporaryDirectory(prefix="bench-headroom-")
                homes.append(tmp)
                home = Path(tmp.name) / "home"
                keys = [f"sk-ant-api03-headroom-{label}-{i:04d}" + "x" * 60 for i in range(10)]
                env = {**sidecar_env(home, fake.url, ()), "PYTHONPATH": str(tree)}
                subprocess.run(
                    [sys.executable, "-m", "sidecar", "key", "add", "-p", "anthropic"],
                    input="\n".join(keys),
                    text=True,
                    env=env,
                    check=True,
                    capture_output=True,
                )
                await fake.script(keys[0], [], {"kind": "rate_limited", "retry_after": 30})
                await fake.script(keys[1], [], {**reply_step(20), "headers": _e2e_headers()})
                sidecars[label] = TreeSidecar(tree, fake.url, keys=(), home=home)
                await sidecars[label].__aenter__()
            for r in range(-1, rounds):  # round -1 warms up, unrecorded
                for label, sidecar in sidecars.items():
                    await sidecar.request("sidecar/keyReset", {"provider": "anthropic"})
                    started = time.perf_counter_ns()
                    await sidecar.request("sidecar/status", {"provider": "anthropic"})
                    status_ms = (time.perf_counter_ns() - started) / 1e6
                    sink = TokenSink()
                    start, result = await sidecar.stream(sink)
                    rotation_ms = (time.perf_counter_ns() - start) / 1e6
                    if result["attempts"] != 2 or not sink.exact(20):
                        raise RuntimeError(f"{label}: the rotation did not fail over cleanly")
                    if r >= 0:
                        figures[label].setdefault("e2e status (ms)", []).append(status_ms)
                        figures[label].setdefault("e2e rotation (ms)", []).append(rotation_ms)
        finally:
            for sidecar in sidecars.values():
                await sidecar.__aexit__(None, None, None)
            for tmp in homes:
                tmp.cleanup()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.headroom", description=__doc__)
    parser.add_argument("--before", type=Path, required=True, help="a source tree from before")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--end-to-end", action="store_true", help="also real sidecars")
    args = parser.parse_args(argv)
    runs: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    for _ in range(args.rounds):
        for label, tree in (("before", args.before), ("after", HERE)):
            for op, us in _round(tree, args.iterations).items():
                runs[label].setdefault(f"{op} (µs)", []).append(us)
    if args.end_to_end:
        for label, ops in asyncio.run(_end_to_end(args.before, args.rounds)).items():
            runs[label].update(ops)
    print(f"| operation | before (median of {args.rounds}) | after | after/before |")
    print("|---|---|---|---|")
    for op in runs["before"]:
        before = statistics.median(runs["before"][op])
        after = statistics.median(runs["after"][op])
        print(f"| {op} | {before:.2f} | {after:.2f} | {after / before:.2f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
