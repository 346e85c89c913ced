"""The sidecar's own CPU cost per delta, without the stdio hop or the scheduler.

A worker process runs the sidecar's :class:`~sidecar.engine.Engine` in-process
against the fake (its own process), writing every batch of deltas through the
JSON-RPC face's :class:`~sidecar.rpc.wire.WireSink` and pygls's ``StdoutWriter``
into /dev/null, and reports the CPU time of its process per delta. Two shapes of stream:

- ``burst``: the whole stream arrives at once (as in the throughput benchmark);
- ``trickle``: one event per network read (the fake pauses 1 ms after each), the
  shape of real streams, where per-read and per-write costs dominate.

``python -m bench.hotpath URL PATCHES SHAPE DELTAS RUNS`` prints one JSON list of
µs per delta; :func:`measure` runs workers for each patch set, alternated.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.lsp import REPO_ROOT
from bench.workload import KEYS, reply_step, sidecar_env, stream_params

__all__ = ["DIRECT", "SHAPES", "measure"]

SHAPES = {"burst": 0.0, "trickle": 0.001}
DIRECT = "direct"  # in place of a patch set: the direct consumer, for comparison


async def _direct(url: str, n: int, runs: int) -> list[float]:
    """The floor: the direct consumer (httpx + httpx-sse) in this process."""
    from bench.contenders import Direct
    from bench.workload import TokenSink

    out = []
    async with Direct(url) as direct:
        for run in range(runs + 1):
            before = time.process_time()
            await direct.stream(KEYS[0], TokenSink())
            if run:
                out.append((time.process_time() - before) / n * 1e6)
    return out


async def _worker(url: str, patches: str, shape: str, n: int, runs: int) -> list[float]:
    if patches == DIRECT:
        return await _direct(url, n, runs)
    from bench import variants

    variants.apply([p for p in patches.split(",") if p])
    from pygls.io_ import StdoutWriter

    from sidecar.engine import Engine
    from sidecar.rotation.keypool import KeyPool
    from sidecar.rpc import protocol
    from sidecar.rpc.streams import stream_request
    from sidecar.rpc.wire import WireSink, sender
    from sidecar.settings import Settings
    from sidecar.store import Store

    with tempfile.TemporaryDirectory() as tmp, open("/dev/null", "wb") as sink:
        home = Path(tmp) / "home"
        settings = Settings.load(home, sidecar_env(home, url, KEYS[:1]))
        engine = Engine(KeyPool(Store(home), settings.env), settings)
        send = sender(SimpleNamespace(writer=StdoutWriter(sink)))
        request = stream_request(
            protocol.parse_params(protocol.StreamParams, stream_params("hotpath"))
        )

        out = []
        for run in range(runs + 1):  # the first is a warm-up
            before = time.process_time()
            wire = WireSink("hotpath", send)
            try:
                await engine.stream("anthropic", request, wire)
            finally:
                wire.flush()
            await asyncio.sleep(0)  # a coalescing writer flushes here
            if run:
                out.append((time.process_time() - before) / n * 1e6)
        await engine.aclose()
    return out


async def measure(
    url: str, patch_sets: Sequence[str], shape: str, n: int, rounds: int, runs: int
) -> dict[str, list[float]]:
    """µs per delta for each patch set ("" = as is, ``DIRECT`` = the direct consumer):
    ``rounds`` workers each, alternated,
    ``runs`` streams per worker. The caller scripts the fake's first key with
    :func:`reply_step` for ``shape``."""
    out: dict[str, list[float]] = {p: [] for p in patch_sets}
    for _ in range(rounds):
        for patches in patch_sets:
            args = [url, patches, shape, str(n), str(runs)]
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.hotpath", *args, stdout=-1, cwd=REPO_ROOT
            )
            stdout, _ = await proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"hotpath worker {patches!r} failed ({proc.returncode})")
            out[patches] += json.loads(stdout)
    return out


def script_step(shape: str, n: int) -> dict[str, Any]:
    return reply_step(n, SHAPES[shape])


def main(argv: list[str]) -> int:
    url, patches, shape, n, runs = argv
    result = asyncio.run(_worker(url, patches, shape, int(n), int(runs)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
