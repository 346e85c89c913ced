"""Building a pool from two subscription logins, end to end over stdio.

Log in as account 1, add the login to the pool, log in as account 2 (the same profile
name: it replaces the profile, which is fine since account 1 is pooled now), add again:
``🔑 1/2``. A rate limit on account 1 is then answered by account 2.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sidecar.fake import FakeProvider, RateLimited
from tests.oauth.support import approve, ask, sidecar_env, stored
from tests.server.conftest import SidecarClient, start_sidecar, stop_sidecar


async def _log_in(editor: SidecarClient) -> None:
    before = len(editor.shown_documents)
    started = await editor.request("sidecar/login", {"provider": "anthropic"})
    async with asyncio.timeout(5):
        while len(editor.shown_documents) == before:
            await asyncio.sleep(0.02)
    url = editor.shown_documents[-1].uri
    assert url == started["url"]
    assert (await approve(url)).status_code == 200
    ended = await editor.wait_login(started["loginId"])
    assert ended["outcome"] == "succeeded" and "logged in" in ended["message"]


async def test_two_logins_make_a_pool_that_rotates(home: Path, fake: FakeProvider) -> None:
    editor = await start_sidecar(home, "visual-studio-code", sidecar_env(fake))
    try:
        await _log_in(editor)
        first = await editor.request("sidecar/keyAdd", {"provider": "anthropic"})
        assert first["added"] is True and first["credential"]["source"] == "pool"
        assert first["status"]["text"] == "🔑 ok"

        await _log_in(editor)
        second = await editor.request("sidecar/keyAdd", {"provider": "anthropic"})
        assert second["added"] is True
        assert second["status"]["text"] == "🔑 1/2"
        await editor.wait_status(lambda s: s["text"] == "🔑 1/2")

        account1, account2 = fake.oauth.issued
        pool = stored(home)
        assert sorted(c.secret for c in pool.values()) == sorted([account1.access, account2.access])
        assert all(c.source == "pool" and c.refresh for c in pool.values())

        fake.script(account1.access, [RateLimited(retry_after=30)])
        result = await editor.request("sidecar/stream", ask())
        assert result["credential"]["fingerprint"].endswith(account2.access[-4:])
        assert result["attempts"] == 2
        status = await editor.request("sidecar/status", {"provider": "anthropic"})
        creds = status["providers"][0]["credentials"]
        assert creds[0]["state"] == "coolingDown" and creds[1]["state"] == "ok"
        assert status["providers"][0]["text"] == "🔑 2/2"
    finally:
        await stop_sidecar(editor)
