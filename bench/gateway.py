"""The gateway against a direct call and the LiteLLM proxy: time to first byte and
pass-through throughput, side by side in one run.

``python -m bench.gateway [--smoke] [--no-litellm] [--out FILE]`` writes its results
between the markers of docs/gateway.md (``--smoke``: tiny sizes, prints instead).

Four processes besides this one: the fake (``bench.fakehost``), ``llm-sidecar
gateway``, a bare aiohttp pass-through (``bench.gateway_floor``: the floor, what a
second Python process and hop cost without the gateway's work) and ``litellm
--config`` (the proxy, when ``litellm[proxy]`` is installed), each serving on
127.0.0.1. One measuring client (httpx, a connection pool of its own per contender,
kept alive) asks each the same request, alternated round by round:

- Anthropic Messages, streamed: the fake's ``/v1/messages`` direct, the gateway's and
  the floor's ``/anthropic/v1/messages``, LiteLLM's ``/anthropic/v1/messages`` (its
  pass-through).
- OpenAI chat completions, streamed: the fake's ``/v1/chat/completions`` direct, the
  gateway's and the floor's ``/openai/v1/chat/completions``, LiteLLM's
  ``/v1/chat/completions``.

Clocks (``perf_counter``, this process): time to first byte runs from just before the
request is sent to the first byte of the body received (a reply of 20 deltas); time
to the first text delta to the chunk that completed the first text delta (what a user
sees first; the gateway holds the answer back until it, a direct call does not);
throughput from just before the request is sent to the last byte received (a reply of
``throughput_deltas`` deltas), as body bytes per second. Every streamed answer is
checked: its text deltas, in order, must be exactly the reply's tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import socket
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import machine, report
from bench.contenders import have_litellm
from bench.fakehost import FakeHost
from bench.lsp import REPO_ROOT
from bench.stats import Section, median
from bench.workload import reply_step, tokens

__all__ = ["GOAL_THROUGHPUT", "GOAL_TTFB_MS", "GatewaySizes", "run"]

GOAL_TTFB_MS = 1.0  # the gateway's added time to first byte, median
GOAL_THROUGHPUT = 0.9  # the gateway's throughput, × direct


def _random_key(prefix: str, length: int, seed: int) -> str:
    alphabet = string.ascii_letters + string.digits + "_-"
    rng = random.Random(seed)
    return prefix + "".join(rng.choice(alphabet) for _ in range(length))


# Known only to the fake. Random characters, as real keys are: the workload's keys end
# in a run of zeros, which the fake's zero-padded ids contain too, so the gateway would
# (rightly) scrub those ids as pieces of the key, a cost no real key brings.
ANTHROPIC_KEY = _random_key("sk-ant-api03-", 95, 1) + "AA"
OPENAI_KEY = _random_key("sk-proj-", 156, 2)
MASTER = "sk-bench-litellm-master"  # LiteLLM's own key for its clients
DOC = Path(REPO_ROOT) / "docs" / "gateway.md"


@dataclass(frozen=True)
class GatewaySizes:
    ttfb_rounds: int = 41
    throughput_rounds: int = 7
    throughput_deltas: int = 10_000
    smoke: bool = False


SMOKE = GatewaySizes(ttfb_rounds=2, throughput_rounds=1, throughput_deltas=200, smoke=True)


@dataclass
class Target:
    """One contender's endpoint for one API."""

    name: str
    url: str
    headers: dict[str, str]
    ttfb_ms: list[float] = field(default_factory=list)
    text_ms: list[float] = field(default_factory=list)  # to the first text delta
    seconds: list[float] = field(default_factory=list)
    body_bytes: int = 0
    bad: int = 0  # answers whose text was not exactly the reply's tokens


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _clean_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if "_API_KEY" not in k
        and not k.endswith("_TOKEN")
        and not k.startswith(("LLM_SIDECAR", "ANTHROPIC_", "OPENAI_"))
    }
    env["NO_PROXY"] = "127.0.0.1,localhost"
    return env


async def _ready(url: str, proc: subprocess.Popen[bytes], within: float) -> float:
    """Seconds until ``url`` answers at all (any status), or the process ends."""
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=2) as client:
        while time.perf_counter() - started < within:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
            with contextlib.suppress(httpx.TransportError):
                await client.get(url)
                return time.perf_counter() - started
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {within:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _gateway(fake_url: str, folder: Path) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    from sidecar.gateway._token import gateway_token
    from sidecar.store import Store

    home = folder / "home"
    token = gateway_token(Store(home))
    port = free_port()
    env = _clean_env()
    env.update(
        LLM_SIDECAR_HOME=str(home),
        ANTHROPIC_BASE_URL=fake_url,
        ANTHROPIC_API_KEY=ANTHROPIC_KEY,
        OPENAI_BASE_URL=f"{fake_url}/v1",
        OPENAI_API_KEY=OPENAI_KEY,
    )
    with (folder / "gateway.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sidecar", "gateway", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,  # its request log is part of its cost: kept, not silenced
        )
        try:
            yield f"http://127.0.0.1:{port}", token, proc
        finally:
            _stop(proc)


@contextlib.contextmanager
def _floor(fake_url: str, folder: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    args = ["--port", str(port), "--upstream", fake_url]
    args += ["--anthropic-key", ANTHROPIC_KEY, "--openai-key", OPENAI_KEY]
    with (folder / "floor.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.gateway_floor", *args],
            env=_clean_env(),
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=REPO_ROOT,
        )
        try:
            yield f"http://127.0.0.1:{port}", proc
        finally:
            _stop(proc)


@contextlib.contextmanager
def _litellm(fake_url: str, folder: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    config = {
        "model_list": [
            {
                "model_name": "gpt-bench",
                "litellm_params": {
                    "model": "openai/gpt-bench",
                    "api_base": f"{fake_url}/v1",
                    "api_key": OPENAI_KEY,
                },
            }
        ],
        "litellm_settings": {"telemetry": False},
        "general_settings": {"master_key": MASTER},
    }
    path = folder / "litellm.json"  # YAML is a superset of JSON
    path.write_text(json.dumps(config))
    port = free_port()
    env = _clean_env()
    env.update(
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_LOG="ERROR",
        # Its Anthropic pass-through takes the provider from these (one key).
        ANTHROPIC_API_BASE=fake_url,
        ANTHROPIC_API_KEY=ANTHROPIC_KEY,
    )
    script = Path(sys.executable).with_name("litellm")
    with (folder / "litellm.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(script), "--config", str(path), "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=log,
            cwd=folder,
        )
        try:
            yield f"http://127.0.0.1:{port}", proc
        finally:
            _stop(proc)


def have_litellm_proxy() -> bool:
    if not have_litellm() or not Path(sys.executable).with_name("litellm").exists():
        return False
    import importlib.util

    return importlib.util.find_spec("fastapi") is not None  # litellm[proxy]


_ANTHROPIC_TEXT = re.compile(rb'"text_delta","text":"([^"]*)"')
_OPENAI_TEXT = re.compile(rb'"delta":\{(?:"role":"assistant",)?"content":"([^"]*)"')


def _text(api: str, body: bytes) -> str:
    pattern = _ANTHROPIC_TEXT if api == "anthropic" else _OPENAI_TEXT
    return b"".join(pattern.findall(body)).decode()


def _request(api: str, tag: str) -> dict[str, Any]:
    messages = [{"role": "user", "content": tag}]
    if api == "anthropic":
        return {"model": "claude-bench", "max_tokens": 4096, "stream": True, "messages": messages}
    return {"model": "gpt-bench", "stream": True, "messages": messages}


async def _one(
    client: httpx.AsyncClient, api: str, target: Target, n: int, tag: str
) -> tuple[float, float, float, bytes]:
    """(seconds to the first body byte, to the first text delta, to the last byte, the
    body) of one stream."""
    request = client.build_request(
        "POST", target.url, headers=target.headers, json=_request(api, tag)
    )
    text = _ANTHROPIC_TEXT if api == "anthropic" else _OPENAI_TEXT
    started = time.perf_counter()
    first = first_text = 0.0
    body = bytearray()
    resp = await client.send(request, stream=True)
    try:
        async for chunk in resp.aiter_raw():
            now = time.perf_counter()
            first = first or now
            body += chunk
            # The whole body so far: a delta may straddle two chunks (a few KB at most).
            if not first_text and text.search(body):
                first_text = now
    finally:
        await resp.aclose()
    ended = time.perf_counter()
    if resp.status_code != 200:
        raise RuntimeError(f"{target.name}: HTTP {resp.status_code}: {bytes(body[:300])!r}")
    return first - started, first_text - started, ended - started, bytes(body)


async def _measure(
    clients: dict[str, httpx.AsyncClient],
    api: str,
    targets: list[Target],
    n: int,
    rounds: int,
    *,
    ttfb: bool,
) -> None:
    want = tokens(n)
    for r in range(rounds):
        # Alternated, and each round starts with a different contender.
        order = targets[r % len(targets) :] + targets[: r % len(targets)]
        for target in order:
            first, text, total, body = await _one(clients[target.name], api, target, n, f"r{r}")
            if _text(api, body) != want:
                target.bad += 1
            if ttfb:
                target.ttfb_ms.append(first * 1000)
                target.text_ms.append(text * 1000)
            else:
                target.seconds.append(total)
                target.body_bytes = len(body)


def _spread(values: list[float], unit: str, digits: int = 2) -> str:
    return (
        f"{median(values):.{digits}f} {unit} (min {min(values):.{digits}f}, "
        f"max {max(values):.{digits}f}, n={len(values)})"
    )


FLOOR = "bare aiohttp pass-through (floor)"


def _targets(
    api: str, fake: str, gw: str, token: str, lite: str | None, floor: str | None = None
) -> list[Target]:
    anthropic = api == "anthropic"
    path = "/v1/messages" if anthropic else "/v1/chat/completions"
    version = {"anthropic-version": "2023-06-01"} if anthropic else {}
    direct_key = (
        {"x-api-key": ANTHROPIC_KEY} if anthropic else {"authorization": f"Bearer {OPENAI_KEY}"}
    )
    out = [
        Target("direct", fake + path, {**direct_key, **version}),
        Target("llm-sidecar gateway", f"{gw}/{api}{path}", {"x-api-key": token, **version}),
    ]
    if floor is not None:
        out.append(Target(FLOOR, f"{floor}/{api}{path}", version))
    if lite is not None:
        lite_path = "/anthropic/v1/messages" if anthropic else "/v1/chat/completions"
        out.append(
            Target("LiteLLM proxy", lite + lite_path, {"x-api-key": MASTER, **version})
            if anthropic
            else Target("LiteLLM proxy", lite + lite_path, {"authorization": f"Bearer {MASTER}"})
        )
    return out


async def run(sizes: GatewaySizes, *, litellm: bool = True) -> Section:
    use_litellm = litellm and have_litellm_proxy()
    section = Section(
        "The gateway: time to first byte and throughput",
        f"Streamed answers through each contender, alternated round by round: time to "
        f"first byte on a 20-delta reply ({sizes.ttfb_rounds} rounds), throughput on a "
        f"{sizes.throughput_deltas:,}-delta reply ({sizes.throughput_rounds} rounds). "
        "Median (min, max, n). TTFB: request sent → first body byte; first text delta: "
        "request sent → the chunk that completes it; throughput: "
        "request sent → last byte, body bytes/s; both on this process's perf_counter. "
        "Every answer's text checked exactly.",
    )
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        folder = Path(tmp)
        async with FakeHost() as fake, contextlib.AsyncExitStack() as stack:
            await fake.script(ANTHROPIC_KEY, [], reply_step(20))
            await fake.script(OPENAI_KEY, [], reply_step(20))
            gw_url, token, gw_proc = stack.enter_context(_gateway(fake.url, folder))
            lite_url: str | None = None
            if use_litellm:
                lite_url, lite_proc = stack.enter_context(_litellm(fake.url, folder))
            floor_url, floor_proc = stack.enter_context(_floor(fake.url, folder))
            gw_ready = await _ready(gw_url, gw_proc, 30)
            await _ready(floor_url, floor_proc, 30)
            section.add("llm-sidecar gateway: spawn → answering", f"{gw_ready:.2f} s")
            if use_litellm:
                assert lite_url is not None
                lite_ready = await _ready(lite_url + "/health/liveliness", lite_proc, 120)
                section.add("LiteLLM proxy: spawn → answering", f"{lite_ready:.2f} s")
            for api in ("anthropic", "openai"):
                targets = _targets(api, fake.url, gw_url, token, lite_url, floor_url)
                clients = {
                    t.name: await stack.enter_async_context(
                        httpx.AsyncClient(timeout=120, trust_env=False)
                    )
                    for t in targets
                }
                key = ANTHROPIC_KEY if api == "anthropic" else OPENAI_KEY
                await fake.script(key, [], reply_step(20))
                await _measure(clients, api, targets, 20, 2, ttfb=True)  # warm-up
                for t in targets:
                    t.ttfb_ms.clear()
                    t.text_ms.clear()
                await _measure(clients, api, targets, 20, sizes.ttfb_rounds, ttfb=True)
                n = sizes.throughput_deltas
                await fake.script(key, [], reply_step(n))
                await _measure(clients, api, targets, n, sizes.throughput_rounds, ttfb=False)
                _report(section, api, targets)
    if not use_litellm:
        section.extra.append(
            "LiteLLM was left out: `litellm[proxy]` is not installed (`pip install -e "
            "'.[bench]'`)" + ("" if litellm else ", or --no-litellm was given") + "."
        )
    return section


def _report(section: Section, api: str, targets: list[Target]) -> None:
    direct = targets[0]
    d_ttfb = median(direct.ttfb_ms)
    d_time = median(direct.seconds)
    for t in targets:
        label = f"{api}: {t.name}"
        section.add(f"{label}: time to first byte", _spread(t.ttfb_ms, "ms"))
        section.add(f"{label}: time to the first text delta", _spread(t.text_ms, "ms"))
        rate = [t.body_bytes / s / 1e6 for s in t.seconds]
        section.add(f"{label}: throughput", _spread(rate, "MB/s"))
        section.numbers[f"{api}:{t.name}:ttfb_ms"] = median(t.ttfb_ms)
        section.numbers["lost_streams"] = section.numbers.get("lost_streams", 0) + t.bad
        if t is direct:
            continue
        added = median(t.ttfb_ms) - d_ttfb
        ratio = d_time / median(t.seconds)
        ours = t.name == "llm-sidecar gateway"
        section.add(
            f"{label}: added time to first byte (median − direct's)",
            f"{added:+.2f} ms",
            f"≤ {GOAL_TTFB_MS:.0f} ms" if ours else "",
            added <= GOAL_TTFB_MS if ours else None,
        )
        section.add(
            f"{label}: added time to the first text delta (median − direct's)",
            f"{median(t.text_ms) - median(direct.text_ms):+.2f} ms",
        )
        section.add(
            f"{label}: throughput × direct (direct's median time / its)",
            f"{ratio:.2f}×",
            f"≥ {GOAL_THROUGHPUT}×" if ours else "",
            ratio >= GOAL_THROUGHPUT if ours else None,
        )
        section.numbers[f"{api}:{t.name}:added_ttfb_ms"] = added
        section.numbers[f"{api}:{t.name}:throughput_ratio"] = ratio
    by_name = {t.name: t for t in targets}
    if FLOOR in by_name:
        own = median(by_name["llm-sidecar gateway"].ttfb_ms) - median(by_name[FLOOR].ttfb_ms)
        section.add(
            f"{api}: llm-sidecar gateway: time to first byte over the floor's (its own work)",
            f"{own:+.2f} ms",
        )
        section.numbers[f"{api}:gateway_over_floor_ms"] = own
    bad = sum(t.bad for t in targets)
    section.add(f"{api}: answers whose text was not exact", str(bad), "0", bad == 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, prints the results")
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM out")
    parser.add_argument("--out", type=Path, help=f"the report to write (default: {DOC})")
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else GatewaySizes()
    load_before, started = machine.load_average(), time.monotonic()
    section = asyncio.run(run(sizes, litellm=not args.no_litellm))
    command = "python -m bench.gateway" + (" --smoke" if args.smoke else "")
    block = report.render(
        [section],
        machine.describe(),
        command=command,
        load=(load_before, machine.load_average()),
        minutes=(time.monotonic() - started) / 60,
    )
    out: Path | None = args.out or (None if args.smoke else DOC)
    if out is None:
        print(block)
    else:
        report.write(out, block)
        print(f"bench: wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
