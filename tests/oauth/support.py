"""Helpers of the OAuth tests: a browser stand-in, a seeded login, the environment."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from sidecar.credentials import Credential
from sidecar.fake import FakeProvider, TokenPair
from sidecar.store import Store


def sidecar_env(fake: FakeProvider, **extra: str) -> dict[str, str]:
    """A sidecar's environment pointing both the API and the login at the fake."""
    return {
        **fake.oauth_env(),
        "ANTHROPIC_BASE_URL": fake.url,
        # Not a remote session, whatever the machine running the tests is.
        "SSH_CONNECTION": "",
        "SSH_TTY": "",
        **extra,
    }


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def port_of(url: str) -> int:
    """The loopback port of a login's authorization URL (its redirect_uri)."""
    redirect = urlsplit(query(url)["redirect_uri"])
    assert redirect.hostname == "localhost" and redirect.path == "/callback"
    assert redirect.port is not None
    return redirect.port


async def approve(url: str) -> httpx.Response:
    """Play the browser: open the authorization URL and follow where it leads."""
    async with httpx.AsyncClient(follow_redirects=True, timeout=10) as client:
        return await client.get(url)


async def approve_for_paste(url: str) -> tuple[str, str, str]:
    """Play the browser of a paste login: (code, state, the hosted page's URL)."""
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(url)
        assert answer.status_code == 302
        location = answer.headers["location"]
        page = await client.get(location)
        assert page.status_code == 200
    fields = query(location)
    assert f"{fields['code']}#{fields['state']}" in page.text
    return fields["code"], fields["state"], location


async def port_closed(port: int, timeout: float = 5.0) -> bool:
    """True once nothing listens on 127.0.0.1:port any more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return True
        writer.close()
        await asyncio.sleep(0.05)
    return False


def seed_login(
    home: Path,
    pair: TokenPair,
    *,
    expires_at: float,
    profile: str = "anthropic:default",
) -> Credential:
    """Store a login as if the user had logged in earlier."""
    cred = Credential(
        id=profile,
        provider="anthropic",
        kind="oauth",
        source="profile",
        secret=pair.access,
        refresh=pair.refresh,
        expires_at=expires_at,
    )
    with Store(home).transaction() as data:
        data.put_profile(cred)
    return cred


def stored(home: Path) -> dict[str, Any]:
    """Every stored anthropic credential by id."""
    data = Store(home).read()
    return {c.id: c for c in (*data.profiles("anthropic"), *data.pool("anthropic"))}


def ask(**extra: Any) -> dict[str, Any]:
    return {
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "maxTokens": 64,
        "messages": [{"role": "user", "content": "Hello"}],
        **extra,
    }
