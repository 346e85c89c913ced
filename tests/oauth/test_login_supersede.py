"""A second login for the same profile supersedes the pending one, over stdio.

The callback port is named (LLM_SIDECAR_OAUTH_CALLBACK_PORT) so that a port still
held by the first login would turn the second into a paste login: the test sees
whether the port was freed without depending on the machine's port 53692.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from pygls.exceptions import JsonRpcException

from sidecar.fake import FakeProvider
from tests.oauth.support import approve, port_closed, port_of, sidecar_env, stored
from tests.server.conftest import start_sidecar, stop_sidecar


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_new_login_for_the_profile_supersedes_the_pending_one(
    home: Path, fake: FakeProvider
) -> None:
    port = _free_port()
    env = sidecar_env(fake, LLM_SIDECAR_OAUTH_CALLBACK_PORT=str(port))
    editor = await start_sidecar(home, "neovim", env)
    try:
        first = await editor.request("sidecar/login", {"provider": "anthropic"})
        assert first["mode"] == "auto" and port_of(first["url"]) == port

        second = await editor.request("sidecar/login", {"provider": "anthropic"})
        # The first login's port was freed before the second listened: the usual port.
        assert second["mode"] == "auto" and port_of(second["url"]) == port
        assert second["loginId"] != first["loginId"]
        told = await editor.wait_login(first["loginId"])
        assert (told["provider"], told["profile"], told["outcome"]) == (
            "anthropic",
            "default",
            "superseded",
        )
        assert "superseded" in told["message"]

        # The first login is over: its code can no longer be pasted.
        with pytest.raises(JsonRpcException) as err:
            await editor.request(
                "sidecar/loginComplete", {"loginId": first["loginId"], "input": "code#state"}
            )
        assert err.value.code == -32005 and "superseded" in err.value.message

        # A login for another profile leaves this one alone.
        other = await editor.request("sidecar/login", {"provider": "anthropic", "profile": "work"})
        assert other["mode"] == "paste"  # the port is the pending login's

        page = await approve(second["url"])
        assert page.status_code == 200
        assert (await editor.wait_login(second["loginId"]))["outcome"] == "succeeded"
        assert list(stored(home)) == ["anthropic:default"]
        assert fake.oauth.exchange_requests == 1
        await editor.request("sidecar/loginCancel", {"loginId": other["loginId"]})
        assert await port_closed(port)
    finally:
        await stop_sidecar(editor)
