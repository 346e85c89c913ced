"""1. Start-up: spawn → ``initialize`` reply and → the first answered request; the
first stream after a spawn against later ones; resident memory.

llm-sidecar (``python -m sidecar``) against the floor that pygls itself sets
(:mod:`bench.floor_server`), spawned alternately. Then one run of each under
``python -X importtime`` lists what llm-sidecar imports on the initialize path
beyond the floor, and flags modules that belong to streaming or login only.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fakehost import FakeHost
from bench.lsp import REPO_ROOT, LspProcess, rss_kib
from bench.sizes import Sizes
from bench.stats import Section, median
from bench.workload import KEYS, SidecarProcess, TokenSink, reply_step, sidecar_env

__all__ = ["ImportEntry", "breakdown", "imports_on_initialize", "run"]

GOAL_RATIO = 1.10
GOAL_RSS_MB = 50.0
GOAL_FIRST_STREAM = 1.5  # the first stream after a spawn, against a later one
THINK_S = 1.0  # spawn → first question: no one types faster
# Needed only to stream or to log in: none of it belongs on the initialize path.
OFFENDERS = (
    "httpx",
    "httpcore",
    "h11",
    "h2",
    "anyio",
    "sniffio",
    "certifi",
    "ssl",
    "idna",
    "httpx_sse",
    "sidecar.engine",
    "sidecar.providers",
    "sidecar.oauth",
    "sidecar.pricing",
)


@dataclass(frozen=True)
class ImportEntry:
    module: str
    self_us: int
    cumulative_us: int
    depth: int


async def _first_answer_once(
    argv: list[str], env: Mapping[str, str], method: str, params: Any
) -> float:
    """ms from spawn to the answer of the first request after ``initialized``: when an
    editor has what it asked for, not only the handshake."""
    start = time.perf_counter_ns()
    proc = await LspProcess.spawn(argv, env)
    try:
        await proc.initialize()
        proc.notify("initialized", {})
        await proc.request(method, params)
        return (time.perf_counter_ns() - start) / 1e6
    finally:
        await proc.close()


async def _first_streams(fake_url: str, think: float) -> tuple[list[float], float]:
    """One sidecar spawned: request → first delta (ms) of its first three streams, the
    first sent ``think`` s after the first status was answered; and MB resident after
    the first stream."""
    firsts: list[float] = []
    async with SidecarProcess(fake_url, KEYS[:1]) as sidecar:
        await sidecar.request("sidecar/status", {})
        await asyncio.sleep(think)
        rss = 0.0
        for _ in range(3):
            sink = TokenSink()
            start, _ = await sidecar.stream(sink)
            firsts.append((sink.first_ns - start) / 1e6)
            if not rss:
                rss = rss_kib(sidecar.pid) / 1024
    return firsts, rss


async def _spawn_once(argv: list[str], env: Mapping[str, str]) -> tuple[float, float]:
    """(ms from spawn to the initialize reply, MB resident right after it)."""
    start = time.perf_counter_ns()
    proc = await LspProcess.spawn(argv, env)
    try:
        await proc.initialize()
        elapsed = (time.perf_counter_ns() - start) / 1e6
        rss = rss_kib(proc.pid) / 1024
    finally:
        await proc.close()
    return elapsed, rss


def _parse_importtime(stderr: str) -> dict[str, ImportEntry]:
    entries: dict[str, ImportEntry] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        timing, cumulative, name = line[len("import time:") :].split("|", 2)
        module = name.strip()
        depth = (len(name) - len(name.lstrip())) // 2
        entries[module] = ImportEntry(module, int(timing), int(cumulative), depth)
    return entries


async def _importtime(module: str, env: Mapping[str, str]) -> dict[str, ImportEntry]:
    """Every module imported from spawn to the ``initialize`` reply (after
    ``initialized`` the sidecar loads the streaming path in the background, on purpose)."""
    proc = await LspProcess.spawn([sys.executable, "-X", "importtime", "-m", module], env)
    try:
        await proc.initialize()
        await asyncio.sleep(0.05)  # the last lines of stderr arrive
        upto = len(proc.stderr)  # not what `shutdown` loads (it saves usage)
    finally:
        await proc.close()
    return _parse_importtime(proc.stderr[:upto].decode(errors="replace"))


_BREAKDOWN = """
import json, time
t0 = time.perf_counter()
import pygls.lsp.server, lsprotocol.types
t1 = time.perf_counter()
import sidecar.cli, sidecar.logs, sidecar.rpc.server
t2 = time.perf_counter()
sidecar.rpc.server.create_server()
t3 = time.perf_counter()
print(json.dumps([(t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3]))
"""


async def breakdown(env: Mapping[str, str], runs: int) -> list[float]:
    """Medians (ms) of: importing pygls and lsprotocol's types (the floor's imports),
    then llm-sidecar's own modules of the serve path, then ``create_server()``."""
    samples: list[list[float]] = []
    for _ in range(runs):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _BREAKDOWN, env=dict(env), cwd=REPO_ROOT, stdout=-1
        )
        stdout, _ = await proc.communicate()
        samples.append(json.loads(stdout))
    return [median([s[i] for s in samples]) for i in range(3)]


async def imports_on_initialize(env: Mapping[str, str]) -> tuple[list[ImportEntry], list[str]]:
    """(modules llm-sidecar imports that the floor does not, the offenders among them)."""
    sidecar = await _importtime("sidecar", env)
    floor = await _importtime("bench.floor_server", env)
    extra = [e for name, e in sidecar.items() if name not in floor]
    offenders = [
        e.module
        for e in extra
        if any(e.module == o or e.module.startswith(o + ".") for o in OFFENDERS)
    ]
    return extra, offenders


def _top_level(extra: list[ImportEntry]) -> list[tuple[str, float]]:
    """Self time (ms) of the extra imports, summed per top-level package, largest first."""
    totals: dict[str, float] = {}
    for e in extra:
        top = e.module.split(".")[0]
        if top == "sidecar":
            top = e.module
        totals[top] = totals.get(top, 0.0) + e.self_us / 1000
    return sorted(totals.items(), key=lambda kv: -kv[1])


async def run(sizes: Sizes) -> Section:
    runs = sizes.startup_runs
    section = Section(
        "Start-up",
        f"Spawn → `initialize` reply over stdio, and VmRSS right after it; {runs} runs of "
        "each, alternated, after one warm-up each. The floor is a bare pygls "
        "`LanguageServer` with one custom method (`bench/floor_server.py`). llm-sidecar "
        "runs in a fresh home with two keys in its environment.",
    )
    with tempfile.TemporaryDirectory(prefix="llm-sidecar-bench-") as tmp:
        env = sidecar_env(Path(tmp) / "home", "http://127.0.0.1:9", KEYS)
        contenders = {
            "pygls floor": [sys.executable, "-m", "bench.floor_server"],
            "llm-sidecar": [sys.executable, "-m", "sidecar"],
        }
        times: dict[str, list[float]] = {name: [] for name in contenders}
        rss: dict[str, list[float]] = {name: [] for name in contenders}
        for argv in contenders.values() if not sizes.smoke else ():  # warm-up
            await _spawn_once(argv, env)
        for _ in range(runs):
            for name, argv in contenders.items():
                elapsed, resident = await _spawn_once(argv, env)
                times[name].append(elapsed)
                rss[name].append(resident)
        answered: dict[str, list[float]] = {name: [] for name in contenders}
        first_request: dict[str, tuple[str, Any]] = {
            "pygls floor": ("floor/echo", {}),
            "llm-sidecar": ("sidecar/status", {}),
        }
        for _ in range(runs):
            for name, argv in contenders.items():
                method, params = first_request[name]
                answered[name].append(await _first_answer_once(argv, env, method, params))
        extra, offenders = await imports_on_initialize(env)
        pygls_ms, own_ms, create_ms = await breakdown(env, 1 if sizes.smoke else max(3, runs // 3))

    spawns = 1 if sizes.smoke else max(3, runs // 3)
    async with FakeHost() as fake:
        await fake.script(KEYS[0], [], reply_step(20))
        streams: dict[float, list[list[float]]] = {THINK_S: [], 0.0: []}
        rss_stream: list[float] = []
        for _ in range(spawns):
            for think, samples in streams.items():
                firsts, resident = await _first_streams(fake.url, think)
                samples.append(firsts)
                rss_stream.append(resident)
    floor_a, ours_a = answered["pygls floor"], answered["llm-sidecar"]
    ratio_a = median([o / f for o, f in zip(ours_a, floor_a, strict=True)])
    section.numbers["first_answer_ratio"] = ratio_a
    section.add(
        "spawn → first answered request after `initialized` (`sidecar/status`; the "
        "floor's `floor/echo`), alternated",
        f"{median(ours_a):.0f} ms (min {min(ours_a):.0f}, max {max(ours_a):.0f}) vs "
        f"{median(floor_a):.0f} ms (min {min(floor_a):.0f}, max {max(floor_a):.0f}), "
        f"n={len(ours_a)}: {ratio_a:.2f}× floor",
        f"≤ {GOAL_RATIO:.2f}× floor",
        ratio_a <= GOAL_RATIO,
    )
    for think, samples in streams.items():
        first = [s[0] for s in samples]
        later = [median(s[1:]) for s in samples]
        ratio = median([f / later_ for f, later_ in zip(first, later, strict=True)])
        section.numbers[f"first_stream_ratio:{think}"] = ratio
        when = f"{think:.0f} s after" if think else "right after"
        section.add(
            f"first stream after a spawn, sent {when} the first status was answered: "
            "request → first delta, against the same spawn's next two",
            f"{median(first):.1f} ms vs {median(later):.1f} ms (n={len(first)} spawns): "
            f"{ratio:.2f}×",
            f"≤ {GOAL_FIRST_STREAM}×" if think else "",
            ratio <= GOAL_FIRST_STREAM if think else None,
        )
    section.numbers["rss_after_stream_mb"] = median(rss_stream)
    section.add("llm-sidecar: RSS after its first stream", f"{median(rss_stream):.1f} MB")

    floor, ours = times["pygls floor"], times["llm-sidecar"]
    ratio = median([o / f for o, f in zip(ours, floor, strict=True)])
    ours_rss = median(rss["llm-sidecar"])
    section.numbers.update(
        startup_ms=median(ours), floor_ms=median(floor), ratio=ratio, rss_mb=ours_rss
    )
    section.add("pygls floor: spawn → initialize reply", f"{median(floor):.0f} ms")
    section.add(
        "llm-sidecar: spawn → initialize reply",
        f"{median(ours):.0f} ms ({ratio:.2f}× floor)",
        f"≤ {GOAL_RATIO:.2f}× floor",
        ratio <= GOAL_RATIO,
    )
    section.add("pygls floor: RSS after initialize", f"{median(rss['pygls floor']):.1f} MB")
    section.add(
        "llm-sidecar: RSS after initialize",
        f"{ours_rss:.1f} MB",
        f"≤ {GOAL_RSS_MB:.0f} MB",
        ours_rss <= GOAL_RSS_MB,
    )
    section.add(
        "streaming/login modules imported on the initialize path",
        ", ".join(offenders) or "none",
        "none",
        not offenders,
    )
    section.numbers.update(pygls_import_ms=pygls_ms, own_import_ms=own_ms, create_ms=create_ms)
    section.add(
        "in-process: import pygls + lsprotocol.types; llm-sidecar's serve modules; create_server()",
        f"{pygls_ms:.0f} ms; {own_ms:.0f} ms; {create_ms:.0f} ms",
    )
    total_ms = sum(e.self_us for e in extra) / 1000
    top = ", ".join(f"{name} {ms:.0f} ms" for name, ms in _top_level(extra)[:12])
    section.extra.append(
        f"`python -X importtime -m sidecar` to the `initialize` reply: {len(extra)} modules beyond "
        f"the floor's, {total_ms:.0f} ms of import time (self), largest first: {top}."
    )
    return section
