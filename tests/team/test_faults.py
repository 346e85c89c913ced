"""Redis lost mid-stream, and Redis emptied: no request fails, the team finds itself again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import redis

from sidecar.fake import FakeProvider, RateLimited, Reply, Text
from tests.server.conftest import stop_sidecar
from tests.team.conftest import RedisServer
from tests.team.test_two_machines import ANSWER, ask, machine, requests_with, team_env


def offline(status: dict[str, object]) -> bool:
    return "team state offline" in str(status.get("message") or "")


async def test_redis_killed_mid_stream(
    tmp_path: Path, fake: FakeProvider, redis_server: RedisServer, make_key: Callable[..., str]
) -> None:
    key = make_key()
    fake.script(key, [], default=Reply([Text("slow " * 60)], chunk=5, interval=0.05))
    a = await machine(tmp_path / "a", team_env(fake, redis_server.url), [key])
    try:
        streams = [asyncio.ensure_future(a.request("sidecar/stream", ask())) for _ in range(3)]
        await fake.wait_for_async(lambda: len(fake.requests) == 3, 15)
        redis_server.stop()
        for answered in await asyncio.gather(*streams):
            assert answered["attempts"] == 1
        shown = "".join(d.get("text", "") for d in a.deltas if d["kind"] == "text")
        assert shown.count("slow") == 3 * 60  # every word of every stream arrived
        await a.wait_status(offline, 15)
        fake.script(key, [], default=ANSWER)
        answered = await a.request("sidecar/stream", ask())  # and after, still served
        assert answered["attempts"] == 1
        redis_server.start()
        seen = len(a.statuses)
        await a.wait_status(lambda s: not offline(s), 60, seen)
        assert sum(offline(s) for s in a.statuses) == 1  # said once, not at every retry
    finally:
        await stop_sidecar(a)


async def test_redis_emptied_under_a_running_team(
    tmp_path: Path, fake: FakeProvider, redis_server: RedisServer, make_key: Callable[..., str]
) -> None:
    first, second = make_key(), make_key()
    fake.script(first, [], default=ANSWER)
    fake.script(second, [], default=ANSWER)
    env = team_env(fake, redis_server.url)
    a = await machine(tmp_path / "a", env, [first, second])
    b = await machine(tmp_path / "b", env, [first, second])
    try:
        await a.request("sidecar/stream", ask())
        client = redis.Redis.from_url(redis_server.url)
        client.flushall()
        client.close()
        # Both machines take the new namespace (a new salt) and still share what they see.
        fake.script(first, [], default=RateLimited(retry_after=3600))
        answered = await a.request("sidecar/stream", ask())
        assert answered["attempts"] == 2
        await b.wait_status(lambda s: s["text"] == "🔑 2/2 (rotated)", 30)
        answered = await b.request("sidecar/stream", ask())
        assert answered["attempts"] == 1 and requests_with(fake, first) == 2
    finally:
        await stop_sidecar(a)
        await stop_sidecar(b)
