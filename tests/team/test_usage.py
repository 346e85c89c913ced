"""Usage counts are the team's: every machine's requests of a key add up in Redis.

Two homes stand for two machines; the counters are Redis hashes every machine adds to
(HINCRBY in one script), so increments made at the same moment never lose each other.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sidecar.fake import FakeProvider
from sidecar.rotation.classify import Failure, FailureClass
from sidecar.rotation.keypool import KeyPool
from sidecar.rotation.sharing import start_sharing
from sidecar.settings import Settings
from sidecar.store import Store
from tests.server.conftest import SidecarClient, server_env
from tests.team.conftest import RedisServer
from tests.team.test_two_machines import ask, rotated_together, team_env, two_keys


async def usage_of(client: SidecarClient, index: int = 0) -> dict[str, Any]:
    status = await client.request("sidecar/status", {"provider": "anthropic"})
    return dict(status["providers"][0]["credentials"][index].get("usage") or {})


async def until_usage(client: SidecarClient, wanted: dict[str, Any], index: int = 0) -> None:
    """Poll a bounded number of times until the credential's usage shows ``wanted``."""
    for _ in range(200):
        seen = await usage_of(client, index)
        if {k: seen.get(k) for k in wanted} == wanted:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached {wanted}: {seen}")


async def test_requests_from_two_machines_add_up_in_both_statuses(
    tmp_path: Path, fake: FakeProvider, redis_server: RedisServer, make_key: Callable[..., str]
) -> None:
    first, second = two_keys(fake, make_key, limited_once=True)
    env = team_env(fake, redis_server.url)
    # A's first request meets the 429 (a failure of the first key) and the second key
    # answers; once B has moved too, both machines ask at once.
    async with rotated_together(tmp_path, env, [first, second]) as (a, b):
        await asyncio.gather(
            *(a.request("sidecar/stream", ask()) for _ in range(2)),
            *(b.request("sidecar/stream", ask()) for _ in range(2)),
        )
        assert sum(r.status == 200 for r in fake.requests) == 5
        # The second key answered every request (3 from A, 2 from B): both say 5.
        team = {"requests": 5, "failures": 0, "counted": "team"}
        await until_usage(a, team, 1)
        await until_usage(b, team, 1)
        await until_usage(b, {"requests": 0, "failures": 1, "counted": "team"}, 0)
        # The CLI (a process of its own) shows the team's sum while the server answers.
        used = _cli_status(tmp_path / "a", env)["providers"][0]["credentials"][1]["usage"]
        assert (used["requests"], used["counted"]) == (5, "team")

        # Redis gone: each shows its own count again, and says so.
        redis_server.stop()
        await until_usage(a, {"requests": 3, "counted": "machine"}, 1)
        await until_usage(b, {"requests": 2, "counted": "machine"}, 1)
    # Each home's files keep its own count (written at the latest on exit).
    for home, mine in ((tmp_path / "a", 3), (tmp_path / "b", 2)):
        state = json.loads((home / "state.json").read_text())["providers"]["anthropic"]
        assert sum(u["requests"] for u in state["usage"].values()) == mine
    used = _cli_status(tmp_path / "a", env)["providers"][0]["credentials"][1]["usage"]
    assert (used["requests"], used["counted"]) == (3, "machine")


def _cli_status(home: Path, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "status", "--json", "--provider", "anthropic"],
        env=server_env(home, env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


async def test_counts_made_at_once_on_two_machines_are_never_lost(
    redis_server: RedisServer, make_key: Callable[..., str]
) -> None:
    """Two pools in threads count the same key concurrently: the sum is exact."""
    key = make_key()
    env = {"LLM_SIDECAR_STATE": redis_server.url, "LLM_SIDECAR_STATE_NAMESPACE": "acme"}
    per_thread, threads = 40, 3
    with tempfile.TemporaryDirectory() as tmp:
        pools = []
        for name in ("a", "b"):
            home = Path(tmp) / name
            pool = KeyPool(Store(home), Settings.load(home, env).env)
            pool.add_key("anthropic", key)
            pools.append(pool)
        team = Settings.load(Path(tmp), env).team
        syncs = [start_sharing(p, team, lambda link: None) for p in pools]
        try:
            for _ in range(200):
                if all(s is not None and s.link == "online" for s in syncs):
                    break
                await asyncio.sleep(0.05)
            cred = pools[0].credentials("anthropic")[0]
            failure = Failure(FailureClass.REQUEST, 400, None, "bad request", None, False)

            def work(pool: KeyPool) -> None:
                for _ in range(per_thread):
                    pool.report_success(cred, model="claude-sonnet-4-5")
                pool.report_failure(cred, failure)

            runners = [
                threading.Thread(target=work, args=(p,)) for p in pools for _ in range(threads)
            ]
            await asyncio.to_thread(lambda: [t.start() for t in runners])
            await asyncio.to_thread(lambda: [t.join(60) for t in runners])
            wanted = (2 * threads * per_thread, 2 * threads)
            for _ in range(200):
                seen = [p.status("anthropic").credentials[0].usage for p in pools]
                if all(u is not None and (u.requests, u.failures) == wanted for u in seen):
                    break
                await asyncio.sleep(0.05)
            assert [(u.requests, u.failures) for u in seen if u is not None] == [wanted] * 2
        finally:
            for sync in syncs:
                if sync is not None:
                    await sync.aclose()
