"""Two homes standing for two machines, one real Redis: what one sees, the other skips.

Every request goes to the fake provider, which records which key each came with
(by fingerprint): "skipped without touching it" is read off that record.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from sidecar.fake import FakeProvider, InvalidKey, RateLimited, Reply, Text
from sidecar.fake import fingerprint as fake_fingerprint
from sidecar.fingerprints import fingerprint, secret_hash
from tests.server.conftest import SidecarClient, server_env, start_sidecar, stop_sidecar
from tests.team.conftest import RedisServer

ANSWER = Reply([Text("The answer is 42.")])


def team_env(fake: FakeProvider, url: str, namespace: str = "acme") -> dict[str, str]:
    return {
        "ANTHROPIC_BASE_URL": fake.url,
        "LLM_SIDECAR_STATE": url,
        "LLM_SIDECAR_STATE_NAMESPACE": namespace,
    }


def ask() -> dict[str, Any]:
    return {
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "maxTokens": 64,
        "messages": [{"role": "user", "content": "What is the answer?"}],
    }


async def machine(home: Path, env: dict[str, str], keys: list[str]) -> SidecarClient:
    client = await start_sidecar(home, env=env)
    for key in keys:
        await client.request("sidecar/keyAdd", {"provider": "anthropic", "key": key})
    return client


async def credential_states(client: SidecarClient) -> list[str]:
    """Each credential's state; "restsForSonnet" for a key that rests for that model only
    (an API key's 429 is its model class's, see docs/protocol.md)."""
    status = await client.request("sidecar/status", {"provider": "anthropic"})
    return [
        "restsForSonnet"
        if c["state"] == "ok" and [m["model"] for m in c.get("modelCooldowns", [])] == ["sonnet"]
        else c["state"]
        for c in status["providers"][0]["credentials"]
    ]


async def until_states(client: SidecarClient, wanted: list[str]) -> None:
    """Poll the status a bounded number of times (the propagation itself is in bench/)."""
    for _ in range(100):
        if sorted(await credential_states(client)) == sorted(wanted):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached {wanted}: {await credential_states(client)}")


def rests_in(server: RedisServer) -> bool:
    """Whether the team's Redis holds a cooldown of any key (of the whole key or a model)."""
    return any(b":cooldowns:" in n or b":modelCooldowns:" in n for n in server.dump())


async def until_rests(server: RedisServer, wanted: bool) -> None:
    """Poll a bounded number of times: the link writes in the background."""
    for _ in range(100):
        if rests_in(server) == wanted:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"Redis {'never' if wanted else 'still'} holds a cooldown")


async def online(client: SidecarClient) -> None:
    """Until the link is up: the team's state pulled and this machine's pushed."""
    for _ in range(200):
        if (await client.request("sidecar/status", {}))["state"].get("link") == "online":
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the team's link never came up")


def two_keys(
    fake: FakeProvider, make_key: Callable[..., str], *, limited_once: bool = False
) -> tuple[str, str]:
    """A first key that answers 429 (always, or once then answers) and a second that
    answers."""
    first, second = make_key(), make_key()
    limited = RateLimited(retry_after=3600)
    if limited_once:
        fake.script(first, [limited], default=ANSWER)
    else:
        fake.script(first, [], default=limited)
    fake.script(second, [], default=ANSWER)
    return first, second


@contextlib.asynccontextmanager
async def rotated_together(
    tmp_path: Path, env: dict[str, str], keys: list[str]
) -> AsyncIterator[tuple[SidecarClient, SidecarClient]]:
    """Machines A and B with ``keys`` (see two_keys), both links up; A's request has met
    the first key's 429 and failed over, and B has moved too. Both stop at the end."""
    a = await machine(tmp_path / "a", env, keys)
    b = await machine(tmp_path / "b", env, keys)
    try:
        await online(a)
        await online(b)
        await a.request("sidecar/stream", ask())
        await b.wait_status(lambda s: s["text"] == "🔑 2/2 (rotated)", 15)
        yield a, b
    finally:
        await stop_sidecar(a)
        await stop_sidecar(b)


def requests_with(fake: FakeProvider, key: str) -> int:
    return sum(r.key == fake_fingerprint(key) for r in fake.requests)


async def test_a_rate_limit_seen_on_one_machine_is_skipped_on_the_other(
    tmp_path: Path, fake: FakeProvider, redis_server: RedisServer, make_key: Callable[..., str]
) -> None:
    first, second = two_keys(fake, make_key)
    env = team_env(fake, redis_server.url)
    a = await machine(tmp_path / "a", env, [first, second])
    b = await machine(tmp_path / "b", env, [first, second])
    try:
        for _ in range(200):  # the link comes up in the background, after `initialized`
            status = await b.request("sidecar/status", {})
            if status["state"].get("link") in ("online", "offline"):
                break
            await asyncio.sleep(0.05)
        assert status["state"] == {
            "backend": "redis",
            "where": f"redis://127.0.0.1:{redis_server.port}/0 (acme)",
            "link": "online",
        }
        answered = await a.request("sidecar/stream", ask())
        assert answered["attempts"] == 2
        assert requests_with(fake, first) == 1

        # B learns of the cooldown without a request of its own; its status bar moves.
        pushed = await b.wait_status(lambda s: s["text"] == "🔑 2/2 (rotated)", 15)
        assert pushed["kind"] == "Warning"
        assert await credential_states(b) == ["restsForSonnet", "ok"]

        answered = await b.request("sidecar/stream", ask())
        assert answered["attempts"] == 1  # straight to the second key
        assert requests_with(fake, first) == 1  # B never touched the limited key

        dump = b"\n".join(redis_server.dump())
        for key in (first, second):
            for shown in (key, fingerprint(key), fake_fingerprint(key), secret_hash(key)):
                assert shown.encode() not in dump, "a secret or its fingerprint reached Redis"
    finally:
        await stop_sidecar(a)
        await stop_sidecar(b)


async def test_a_machine_that_starts_later_skips_what_the_team_saw(
    tmp_path: Path, fake: FakeProvider, redis_server: RedisServer, make_key: Callable[..., str]
) -> None:
    bad, limited, good = make_key(), make_key(), make_key()
    fake.script(bad, [], default=InvalidKey())
    fake.script(limited, [], default=RateLimited(retry_after=3600))
    fake.script(good, [], default=ANSWER)
    env = team_env(fake, redis_server.url)
    a = await machine(tmp_path / "a", env, [bad, limited, good])
    try:
        answered = await a.request("sidecar/stream", ask())
        assert answered["attempts"] == 3
    finally:
        await stop_sidecar(a)

    b = await machine(tmp_path / "b", env, [bad, limited, good])
    try:
        await until_states(b, ["rejected", "restsForSonnet", "ok"])
        answered = await b.request("sidecar/stream", ask())
        assert answered["attempts"] == 1
        assert requests_with(fake, bad) == 1 and requests_with(fake, limited) == 1
    finally:
        await stop_sidecar(b)


async def test_another_namespace_shares_nothing(
    tmp_path: Path, fake: FakeProvider, redis_server: RedisServer, make_key: Callable[..., str]
) -> None:
    first, second = two_keys(fake, make_key)
    a = await machine(tmp_path / "a", team_env(fake, redis_server.url, "acme"), [first, second])
    b = await machine(tmp_path / "b", team_env(fake, redis_server.url, "other"), [first, second])
    try:
        await a.request("sidecar/stream", ask())
        await b.request("sidecar/status", {"provider": "anthropic"})
        answered = await b.request("sidecar/stream", ask())
        assert answered["attempts"] == 2  # B had to find out for itself
    finally:
        await stop_sidecar(a)
        await stop_sidecar(b)


async def test_redis_down_then_back(
    tmp_path: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    """No request fails because Redis is down; `team state offline` once; back online."""
    import pytest

    from tests.team.conftest import REDIS

    if REDIS is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    server = RedisServer(tmp_path)  # its port, with nothing listening yet
    key = make_key()
    fake.script(key, [], default=ANSWER)
    a = await machine(tmp_path / "a", team_env(fake, server.url), [key])
    try:
        offline = await a.wait_status(
            lambda s: "team state offline" in (s.get("message") or ""), 15
        )
        assert offline["kind"] == "Warning"
        for _ in range(3):
            answered = await a.request("sidecar/stream", ask())
            assert answered["attempts"] == 1
        said = [s for s in a.statuses if "team state offline" in (s.get("message") or "")]
        server.start()
        seen = len(a.statuses)
        back = await a.wait_status(lambda s: "team state" not in (s.get("message") or ""), 60, seen)
        assert back["kind"] == "Normal"
        assert len(said) == 1
    finally:
        await stop_sidecar(a)
        server.stop()


async def test_a_reset_on_one_machine_is_a_reset_for_the_team(
    tmp_path: Path, fake: FakeProvider, redis_server: RedisServer, make_key: Callable[..., str]
) -> None:
    """The user's word ("try the keys again", e.g. after topping up) holds team-wide."""
    first, second = two_keys(fake, make_key, limited_once=True)
    env = team_env(fake, redis_server.url)
    async with rotated_together(tmp_path, env, [first, second]) as (a, b):
        await a.request("sidecar/keyReset", {"provider": "anthropic"})
        await until_states(b, ["ok", "ok"])
        await until_rests(redis_server, False)
    # The CLI's `key reset` (a process of its own, on a machine with the same keys)
    # resets the team as well.
    c = await machine(tmp_path / "c", env, [first, second])
    try:
        fake.script(first, [RateLimited(retry_after=3600)], default=ANSWER)
        await online(c)
        await c.request("sidecar/stream", ask())
        await until_rests(redis_server, True)
        cli_env = server_env(tmp_path / "d", env)
        for args, given in ((["key", "add"], f"{first}\n{second}\n"), (["key", "reset"], "")):
            done = subprocess.run(
                [sys.executable, "-m", "sidecar", *args, "--provider", "anthropic"],
                env=cli_env,
                input=given,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
        await until_states(c, ["ok", "ok"])
        await until_rests(redis_server, False)
    finally:
        await stop_sidecar(c)


async def test_a_spent_window_seen_on_one_machine_is_skipped_on_the_other_before_any_429(
    tmp_path: Path, redis_server: RedisServer, make_key: Callable[..., str]
) -> None:
    """Headroom is the team's: the provider's "remaining 0" on A's answer keeps B off the
    key without B spending a request on a 429."""
    from sidecar.fake import RateLimits

    first, second = make_key(), make_key()
    with FakeProvider(limits={first: RateLimits(requests=1, period=60)}) as fake:
        fake.script(first, [], default=ANSWER)
        fake.script(second, [], default=ANSWER)
        env = team_env(fake, redis_server.url)
        a = await machine(tmp_path / "a", env, [first, second])
        b = await machine(tmp_path / "b", env, [first, second])
        try:
            assert (await a.request("sidecar/stream", ask()))["attempts"] == 1
            for _ in range(200):  # until B holds A's report of the key's window
                status = await b.request("sidecar/status", {"provider": "anthropic"})
                windows = status["providers"][0]["credentials"][0].get("windows", [])
                if any(w.get("remaining") == 0 for w in windows):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"B never saw the spent window: {windows}")
            answered = await b.request("sidecar/stream", ask())
            assert answered["attempts"] == 1
            assert requests_with(fake, first) == 1 and requests_with(fake, second) == 1
            assert 429 not in [r.status for r in fake.requests]
        finally:
            await stop_sidecar(a)
            await stop_sidecar(b)


async def test_under_sticky_the_key_one_machine_moved_to_is_the_teams(
    tmp_path: Path, fake: FakeProvider, redis_server: RedisServer, make_key: Callable[..., str]
) -> None:
    """The team's position: A moved off key 1 (a short rest); B, started after that rest
    is over, starts on key 2 with A, not on key 1 (which it would by itself)."""
    first, second = make_key(), make_key()
    fake.script(first, [RateLimited(retry_after=1)], default=ANSWER)
    fake.script(second, [], default=ANSWER)
    env = team_env(fake, redis_server.url)
    a = await machine(tmp_path / "a", env, [first, second])
    try:
        assert (await a.request("sidecar/stream", ask()))["attempts"] == 2
        await until_states(a, ["ok", "ok"])  # the rest of key 1 is over: usable again
    finally:
        await stop_sidecar(a)
    b = await machine(tmp_path / "b", env, [first, second])
    try:
        for _ in range(200):  # the link pulls the team's state in the background
            status = await b.request("sidecar/status", {"provider": "anthropic"})
            if status["providers"][0]["index"] == 2:
                break
            await asyncio.sleep(0.05)
        assert status["providers"][0]["text"] == "🔑 2/2 (rotated)"
        assert (await b.request("sidecar/stream", ask()))["attempts"] == 1
        assert requests_with(fake, first) == 1  # B went to the team's key
    finally:
        await stop_sidecar(b)
