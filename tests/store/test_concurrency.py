"""Several processes adding, removing and rotating at once: nothing lost, nothing torn.

Each worker process loops for a bounded time over add / remove / rotate on
one shared home and reports what it completed; afterwards every completed add
that was not removed is present, every completed remove is absent, and the
files are valid JSON, mode 0600.
"""

from __future__ import annotations

import json
import multiprocessing
import stat
import time
from pathlib import Path

import pytest

from sidecar.errors import AllRateLimited
from sidecar.rotation.classify import Failure, FailureClass
from sidecar.rotation.keypool import KeyPool
from sidecar.store import Store

WORKERS = 4
SECONDS = 3.0


def worker(home: str, n: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    keypool = KeyPool(Store(Path(home)), env={})
    added, removed = [], []
    deadline = time.monotonic() + SECONDS
    i = 0
    while time.monotonic() < deadline:
        key = f"sk-ant-api03-stress-{n}-{i:05d}-{'x' * 12}"
        keypool.add_key("anthropic", key)
        added.append(key)
        if i % 3 == 2:  # remove one of our own earlier keys (we always keep one)
            victim = added[len(added) // 2]
            if victim not in removed:
                gone = [c for c in keypool.credentials("anthropic") if c.secret == victim]
                if gone:
                    keypool.remove("anthropic", fingerprint=gone[0].id, index=None)
                    removed.append(victim)
        if i % 2 == 0:  # rotate: a rate limit on whichever key is current
            try:
                choice = keypool.acquire("anthropic")
            except AllRateLimited:  # every key cooling down for its 10 ms: fine
                pass
            else:
                until = time.time() + 0.01
                failure = Failure(FailureClass.RATE_LIMIT, 429, None, "", until, False)
                keypool.report_failure(choice.credential, failure)
        i += 1
    queue.put((added, removed))


@pytest.mark.slow
def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(str(home), n, queue)) for n in range(WORKERS)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0

    for name in ("pool.json", "state.json"):
        path = home / name
        json.loads(path.read_text())  # valid JSON
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    present = {c.secret for c in KeyPool(Store(home), env={}).credentials("anthropic")}
    total_added = 0
    for added, removed in results:
        total_added += len(added)
        assert set(added) - set(removed) <= present, "a completed add was lost"
        assert not set(removed) & present, "a completed remove came back"
    assert total_added > WORKERS * 10  # the workers really did run concurrently for a while
