"""Refreshing logins on use, end to end over stdio against the fake.

Refresh tokens are single-use: two sidecars refreshing one login at once must end with
exactly one refresh request, both streams answered, and the new pair on disk.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from pygls.exceptions import JsonRpcException

from sidecar.fake import FakeProvider, Reply, Text
from tests.conftest import answer_text
from tests.oauth.support import ask, seed_login, sidecar_env, stored
from tests.server.conftest import SidecarClient, start_sidecar, stop_sidecar


@pytest_asyncio.fixture
async def editor(home: Path, fake: FakeProvider) -> AsyncIterator[SidecarClient]:
    client = await start_sidecar(home, "neovim", sidecar_env(fake))
    yield client
    await stop_sidecar(client)


@pytest.mark.slow
async def test_two_sidecars_refresh_an_expiring_login_exactly_once(
    home: Path, fake: FakeProvider
) -> None:
    old = fake.oauth.issue()
    seed_login(home, old, expires_at=time.time() + 10)  # within the refresh margin
    fake.oauth.delay = 0.5  # both sidecars are surely waiting on the refresh at once
    env = sidecar_env(fake)
    first, second = await asyncio.gather(
        start_sidecar(home, "neovim", env), start_sidecar(home, "visual-studio-code", env)
    )
    try:
        results = await asyncio.gather(
            first.request("sidecar/stream", ask(streamId="a")),
            second.request("sidecar/stream", ask(streamId="b")),
        )
    finally:
        await asyncio.gather(stop_sidecar(first), stop_sidecar(second))
    assert fake.oauth.refresh_requests == 1
    _, new = fake.oauth.issued
    for result in results:
        assert result["credential"]["fingerprint"].endswith(new.access[-4:])
        assert answer_text(result)
    login = stored(home)["anthropic:default"]
    assert (login.secret, login.refresh) == (new.access, new.refresh)
    assert login.expires_at is not None and login.expires_at > time.time() + 3600
    used = {(r.key or "")[-4:] for r in fake.requests if r.path == "/v1/messages"}
    assert used == {new.access[-4:]}  # never the old token


async def test_an_expired_login_is_refreshed_before_use(
    editor: SidecarClient, fake: FakeProvider, home: Path
) -> None:
    old = fake.oauth.issue()
    seed_login(home, old, expires_at=time.time() - 60)
    result = await editor.request("sidecar/stream", ask())
    _, new = fake.oauth.issued
    assert result["attempts"] == 1 and result["credential"]["id"] == "anthropic:default"
    assert result["credential"]["fingerprint"].endswith(new.access[-4:])
    assert fake.oauth.refresh_requests == 1
    assert stored(home)["anthropic:default"].secret == new.access


async def test_a_401_refreshes_then_replays_without_eviction(
    editor: SidecarClient, fake: FakeProvider, home: Path
) -> None:
    old = fake.oauth.issue()
    seed_login(home, old, expires_at=time.time() + 3600)  # looks fresh, but was revoked
    fake.oauth.revoke_access(old.access)
    result = await editor.request("sidecar/stream", ask())
    _, new = fake.oauth.issued
    assert result["attempts"] == 2
    assert result["credential"]["fingerprint"].endswith(new.access[-4:])
    assert [r.status for r in fake.requests if r.path == "/v1/messages"] == [401, 200]
    assert fake.oauth.refresh_requests == 1
    login = stored(home)["anthropic:default"]
    assert (login.secret, login.refresh) == (new.access, new.refresh)
    status = await editor.request("sidecar/status", {"provider": "anthropic"})
    [cred] = status["providers"][0]["credentials"]
    assert cred["state"] == "ok" and status["providers"][0]["text"] == "🔑 ok"


@pytest.mark.parametrize("how", ["expired", "401"])
async def test_invalid_grant_asks_to_log_in_again_and_other_keys_keep_serving(
    editor: SidecarClient,
    fake: FakeProvider,
    home: Path,
    make_key: Callable[..., str],
    how: str,
) -> None:
    key = make_key()
    fake.script(key, [], default=Reply([Text("from the key")]))
    await editor.request("sidecar/keyAdd", {"provider": "anthropic", "key": key})
    login = fake.oauth.issue()
    if how == "expired":
        seed_login(home, login, expires_at=time.time() - 60)
    else:
        seed_login(home, login, expires_at=time.time() + 3600)
        fake.oauth.revoke_access(login.access)
    # The login is first in line: order it before the key.
    with open(home / "credentials.json") as f:
        doc = json.load(f)
    doc["order"] = {"anthropic": ["anthropic:default"]}
    (home / "credentials.json").write_text(json.dumps(doc))
    fake.oauth.fail({"kind": "invalid_grant"})

    result = await editor.request("sidecar/stream", ask())
    assert answer_text(result) == "from the key"
    assert fake.oauth.refresh_requests == 1
    status = await editor.request("sidecar/status", {"provider": "anthropic"})
    creds = {c["id"]: c for c in status["providers"][0]["credentials"]}
    assert creds["anthropic:default"]["state"] == "rejected"
    assert "log in again" in creds["anthropic:default"]["message"]
    assert status["providers"][0]["text"] == "🔑 ok"  # the key is all that is left
    again = await editor.request("sidecar/stream", ask())
    assert answer_text(again) == "from the key" and fake.oauth.refresh_requests == 1


async def test_a_lone_login_that_cannot_be_refreshed_says_log_in_again(
    editor: SidecarClient, fake: FakeProvider, home: Path
) -> None:
    seed_login(home, fake.oauth.issue(), expires_at=time.time() - 60)
    fake.oauth.fail({"kind": "invalid_grant"})
    with pytest.raises(JsonRpcException) as err:
        await editor.request("sidecar/stream", ask())
    assert err.value.code == -32005
    assert err.value.data == {"provider": "anthropic", "reason": "invalid_grant"}
    assert "log in again" in err.value.message and "API key" not in err.value.message
    await editor.wait_status(lambda s: s["text"] == "🔑 rejected")


async def test_a_rate_limited_token_endpoint_is_named_as_such(
    home: Path, fake: FakeProvider
) -> None:
    seed_login(home, fake.oauth.issue(), expires_at=time.time() - 60)
    fake.oauth.fail(*[{"kind": "rate_limited", "retryAfter": 30}] * 3)
    env = sidecar_env(fake, LLM_SIDECAR_OAUTH_MAX_RETRY_WAIT="0.05")
    editor = await start_sidecar(home, "neovim", env)
    try:
        with pytest.raises(JsonRpcException) as err:
            await editor.request("sidecar/stream", ask())
        assert err.value.code == -32005 and err.value.data["reason"] == "rate_limited"
        assert "token endpoint is rate limited, retry in 30 s" in err.value.message
        assert fake.oauth.refresh_requests == 3  # the first try and two retries
        # Not the login's fault: it is not rejected, and works once the endpoint does.
        result = await editor.request("sidecar/stream", ask())
        assert result["credential"]["id"] == "anthropic:default"
    finally:
        await stop_sidecar(editor)


async def test_a_static_token_is_never_refreshed(
    editor: SidecarClient, fake: FakeProvider, home: Path, make_key: Callable[..., str]
) -> None:
    token = make_key("sk-ant-oat01-")
    fake.script(token, [], default=Reply([Text("static")]))
    await editor.request("sidecar/keyAdd", {"provider": "anthropic", "key": token})
    result = await editor.request("sidecar/stream", ask())
    assert answer_text(result) == "static"
    assert fake.oauth.counters()["tokenRequests"] == 0


async def test_refreshing_a_pooled_login_writes_the_pool_file(
    editor: SidecarClient, fake: FakeProvider, home: Path
) -> None:
    old = fake.oauth.issue()
    seed_login(home, old, expires_at=time.time() - 60)
    added = await editor.request("sidecar/keyAdd", {"provider": "anthropic"})
    pool_id = added["credential"]["id"]
    assert added["credential"]["source"] == "pool" and "anthropic:default" not in stored(home)

    result = await editor.request("sidecar/stream", ask())
    _, new = fake.oauth.issued
    assert result["credential"]["id"] == pool_id
    pooled = stored(home)[pool_id]
    assert (pooled.source, pooled.secret, pooled.refresh) == ("pool", new.access, new.refresh)
    assert old.refresh not in (home / "pool.json").read_text()
