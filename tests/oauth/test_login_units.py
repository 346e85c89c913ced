"""The login manager and the refresher in-process, against the fake (no sidecar process)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import httpx
import pytest

from sidecar.credentials import Credential
from sidecar.errors import LoginError
from sidecar.fake import FakeProvider
from sidecar.oauth import DEFAULT_CALLBACK_PORT, LoginEvent, LoginManager, TokenRefresher
from sidecar.rotation.keypool import KeyPool
from sidecar.store import Store
from tests.oauth.support import approve, port_closed, port_of, query, seed_login, sidecar_env


def keypool(home: Path, fake: FakeProvider, **extra: str) -> KeyPool:
    return KeyPool(Store(home), sidecar_env(fake, **extra))


def logins(
    home: Path,
    fake: FakeProvider,
    on_event: Callable[[LoginEvent], None] = lambda event: None,
    **extra: str,
) -> LoginManager:
    """A login manager given the environment (endpoints, knobs) its face read."""
    env = sidecar_env(fake, **extra)
    return LoginManager(KeyPool(Store(home), env), env, on_event=on_event)


def refresher_for(home: Path, fake: FakeProvider) -> TokenRefresher:
    return TokenRefresher(keypool(home, fake), sidecar_env(fake))


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# -- which redirect a login uses ---------------------------------------------------


async def test_the_default_port_busy_means_another_free_port(
    home: Path, fake: FakeProvider, busy_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stand the busy port in for the default one: the rule is the default's.
    monkeypatch.setattr("sidecar.oauth._config.DEFAULT_CALLBACK_PORT", busy_port)
    from sidecar.oauth import oauth_config

    assert oauth_config("anthropic", {}).callback_port == busy_port
    manager = logins(home, fake)
    login = await manager.start("anthropic")
    try:
        assert login.mode == "auto"
        port = port_of(login.url)
        assert port not in (busy_port, 0)
        assert login.callback is not None and login.callback.listening
    finally:
        await manager.aclose()
    assert await port_closed(port)


async def test_the_default_port_when_free(home: Path, fake: FakeProvider) -> None:
    manager = logins(home, fake)
    try:
        login = await manager.start("anthropic")
        assert login.callback is not None
        sockets = login.callback._server.sockets if login.callback._server else []
        # Bound to the loopback address only, whichever port it got.
        assert [s.getsockname()[0] for s in sockets] == ["127.0.0.1"]
        if port_of(login.url) != DEFAULT_CALLBACK_PORT:
            pytest.skip(f"port {DEFAULT_CALLBACK_PORT} is in use on this machine")
    finally:
        await manager.aclose()


async def test_a_named_busy_port_means_paste(
    home: Path, fake: FakeProvider, busy_port: int
) -> None:
    manager = logins(home, fake, LLM_SIDECAR_OAUTH_CALLBACK_PORT=str(busy_port))
    login = await manager.start("anthropic")
    try:
        assert login.mode == "paste" and login.callback is None
        assert query(login.url)["redirect_uri"] == fake.url + "/oauth/code/callback"
        assert f"port {busy_port} is busy" in login.waiting_message
    finally:
        await manager.aclose()


async def test_a_remote_session_means_paste(home: Path, fake: FakeProvider) -> None:
    manager = logins(home, fake, SSH_CONNECTION="10.0.0.1 5555 10.0.0.2 22")
    login = await manager.start("anthropic")
    try:
        assert login.mode == "paste" and login.callback is None
        assert "remote" in login.waiting_message
    finally:
        await manager.aclose()


# -- ending -------------------------------------------------------------------------


async def test_a_login_ends_once_and_reports_it(home: Path, fake: FakeProvider) -> None:
    events: list[tuple[str, str]] = []
    manager = logins(home, fake, on_event=lambda e: events.append((e.kind, e.message)))
    login = await manager.start("anthropic", profile="team")
    waiting = asyncio.ensure_future(manager.wait(login.id))
    page = await approve(login.url)
    assert page.status_code == 200
    cred = await asyncio.wait_for(waiting, 5)
    assert (cred.id, cred.kind, cred.source) == ("anthropic:team", "oauth", "profile")
    assert [kind for kind, _ in events] == ["succeeded"]
    assert cred.secret not in events[0][1] and cred.fingerprint in events[0][1]
    assert not await manager.cancel(login.id)  # over already
    await manager.aclose()


async def test_a_declined_sign_in_fails_the_login(home: Path, fake: FakeProvider) -> None:
    events: list[str] = []
    manager = logins(home, fake, on_event=lambda e: events.append(e.kind))
    login = await manager.start("anthropic")
    waiting = asyncio.ensure_future(manager.wait(login.id))
    fake.oauth.deny = True
    page = await approve(login.url)
    assert page.status_code == 400 and "not completed" in page.text
    with pytest.raises(LoginError) as err:
        await asyncio.wait_for(waiting, 5)
    assert err.value.data == {"provider": "anthropic", "reason": "denied"}
    assert events == ["failed"]
    await manager.aclose()


async def test_the_timeout_ends_the_login(home: Path, fake: FakeProvider) -> None:
    manager = logins(home, fake, LLM_SIDECAR_OAUTH_TIMEOUT="0.2")
    login = await manager.start("anthropic")
    port = port_of(login.url)
    with pytest.raises(LoginError) as err:
        await asyncio.wait_for(manager.wait(login.id), 5)
    assert err.value.data == {"provider": "anthropic", "reason": "timeout"}
    assert "timed out after 0.2 s" in err.value.message
    assert await port_closed(port)
    await manager.aclose()


async def test_a_failed_exchange_ends_the_login(home: Path, fake: FakeProvider) -> None:
    manager = logins(home, fake, LLM_SIDECAR_OAUTH_MAX_RETRY_WAIT="0")
    login = await manager.start("anthropic", "paste")
    fake.oauth.fail(*[{"kind": "server_error"}] * 3)
    async with httpx.AsyncClient() as client:
        location = (await client.get(login.url)).headers["location"]
    with pytest.raises(LoginError) as err:
        await manager.complete(login.id, location)
    assert err.value.data == {"provider": "anthropic", "reason": "server_error"}
    assert "logging in failed" in err.value.message
    assert not manager.running()
    await manager.aclose()


# -- refreshing -----------------------------------------------------------------------


def test_two_processes_refreshing_at_once_spend_one_refresh_token(
    home: Path, fake: FakeProvider
) -> None:
    old = fake.oauth.issue()
    held = seed_login(home, old, expires_at=time.time() - 1)
    fake.oauth.delay = 0.3
    results: list[Credential] = []
    errors: list[BaseException] = []

    def one_process() -> None:
        # A KeyPool of its own: as much as another process shares (the files).
        refresher = refresher_for(home, fake)
        try:
            results.append(refresher.refresh_sync(held, forced=False))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one_process) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert fake.oauth.refresh_requests == 1
    _, new = fake.oauth.issued
    assert {(c.secret, c.refresh) for c in results} == {(new.access, new.refresh)}


async def test_streams_of_one_process_share_one_refresh(home: Path, fake: FakeProvider) -> None:
    held = seed_login(home, fake.oauth.issue(), expires_at=time.time() - 1)
    fake.oauth.delay = 0.2
    refresher = refresher_for(home, fake)
    results = await asyncio.gather(*[refresher.ensure_fresh(held) for _ in range(5)])
    assert fake.oauth.refresh_requests == 1
    assert len({c.secret for c in results}) == 1 and results[0].secret != held.secret


async def test_after_a_401_a_token_refreshed_elsewhere_is_used_as_is(
    home: Path, fake: FakeProvider
) -> None:
    held = seed_login(home, fake.oauth.issue(), expires_at=time.time() + 3600)
    other = refresher_for(home, fake)
    renewed = await other.refresh(held)  # "another process" refreshed it
    mine = refresher_for(home, fake)
    again = await mine.refresh(held)  # we saw a 401 on the old token
    assert again.secret == renewed.secret and fake.oauth.refresh_requests == 1
    fresh = await mine.ensure_fresh(again)
    assert fresh is again  # fresh enough: nothing to do


async def test_a_login_pooled_meanwhile_is_written_back_to_the_pool(
    home: Path, fake: FakeProvider
) -> None:
    held = seed_login(home, fake.oauth.issue(), expires_at=time.time() - 1)
    pool = keypool(home, fake)
    pooled, _ = pool.add_login("anthropic")  # keyAdd moved the profile into the pool
    renewed = await TokenRefresher(pool, sidecar_env(fake)).ensure_fresh(held)
    assert renewed.id == pooled.id and renewed.source == "pool"
    [entry] = Store(home).read().pool("anthropic")
    assert entry.secret == renewed.secret and entry.refresh == renewed.refresh


async def test_static_tokens_are_never_refreshed(
    home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    token = Credential(
        id="anthropic:setup",
        provider="anthropic",
        kind="token",
        source="profile",
        secret=make_key("sk-ant-oat01-"),
        expires_at=time.time() - 10,
    )
    refresher = refresher_for(home, fake)
    assert await refresher.ensure_fresh(token) is token
    with pytest.raises(LoginError) as err:
        await refresher.refresh(token)
    assert (err.value.data or {})["reason"] == "no_refresh_token"
    no_refresh = attrs.evolve(token, kind="oauth", refresh=None)
    assert await refresher.ensure_fresh(no_refresh) is no_refresh
    assert fake.oauth.counters()["tokenRequests"] == 0
