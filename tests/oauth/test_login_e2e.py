"""sidecar/login end to end over stdio, against the fake authorization server.

The test plays the user's browser: it opens the URL the sidecar asked the editor to
show (``window/showDocument``), and the fake "approves" by redirecting to the
sidecar's loopback callback, or to its hosted page showing ``code#state`` to paste.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pygls.exceptions import JsonRpcException

from sidecar.fake import FakeProvider
from tests.oauth.support import (
    approve,
    approve_for_paste,
    port_closed,
    port_of,
    query,
    sidecar_env,
    stored,
)
from tests.server.conftest import SidecarClient, start_sidecar, stop_sidecar

ANTHROPIC_CLIENT_ID = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"


@pytest_asyncio.fixture
async def editor(home: Path, fake: FakeProvider) -> AsyncIterator[SidecarClient]:
    client = await start_sidecar(home, "visual-studio-code", sidecar_env(fake))
    yield client
    await stop_sidecar(client)


async def shown(editor: SidecarClient, url: str, timeout: float = 5.0) -> None:
    """Wait until the sidecar asked the editor to open ``url`` in a browser."""
    async with asyncio.timeout(timeout):
        while not any(d.uri == url for d in editor.shown_documents):
            await asyncio.sleep(0.02)
    [doc] = [d for d in editor.shown_documents if d.uri == url]
    assert doc.external is True


def messages(editor: SidecarClient) -> list[str]:
    return [m["message"] if isinstance(m, dict) else m.message for m in editor.messages]


async def test_loopback_login_through_show_document(
    editor: SidecarClient, fake: FakeProvider, home: Path
) -> None:
    started = await editor.request("sidecar/login", {"provider": "anthropic"})
    assert started["mode"] == "auto" and started["loginId"]
    url = started["url"]
    assert url.startswith(fake.url + "/oauth/authorize?")
    fields = query(url)
    assert fields["code"] == "true" and fields["response_type"] == "code"
    assert fields["client_id"] == ANTHROPIC_CLIENT_ID
    assert fields["scope"] == "org:create_api_key user:profile user:inference"
    assert fields["code_challenge_method"] == "S256" and len(fields["code_challenge"]) == 43
    assert fields["state"] and fields["state"] != fields["code_challenge"]
    port = port_of(url)
    assert "browser" in started["message"]  # what to do now, in the answer itself

    await shown(editor, url)
    page = await approve(url)  # the fake redirects to http://localhost:<port>/callback
    assert page.status_code == 200 and "logged in" in page.text

    ended = await editor.wait_login(started["loginId"])
    assert ended == {
        "loginId": started["loginId"],
        "provider": "anthropic",
        "profile": "default",
        "outcome": "succeeded",
        "message": ended["message"],
    }
    assert "logged in" in ended["message"]
    done = await editor.wait_status(lambda s: s["text"] == "🔑 ok")
    assert done["kind"] == "Normal" and "message" not in done  # the status, nothing else
    [pair] = fake.oauth.issued
    login = stored(home)["anthropic:default"]
    assert (login.kind, login.secret, login.refresh) == ("oauth", pair.access, pair.refresh)
    assert await port_closed(port)
    status = await editor.request("sidecar/status", {"provider": "anthropic"})
    [cred] = status["providers"][0]["credentials"]
    assert cred["id"] == "anthropic:default" and cred["kind"] == "oauth"
    assert cred["fingerprint"].endswith(pair.access[-4:]) and cred["state"] == "ok"


@pytest.mark.parametrize("shape", ["code#state", "redirect URL", "code=…&state=…"])
async def test_paste_login_accepts_each_input_shape(
    editor: SidecarClient, fake: FakeProvider, home: Path, shape: str
) -> None:
    started = await editor.request(
        "sidecar/login", {"provider": "anthropic", "mode": "paste", "profile": "work"}
    )
    assert started["mode"] == "paste"
    assert query(started["url"])["redirect_uri"] == fake.url + "/oauth/code/callback"
    await shown(editor, started["url"])  # paste logins open the page too
    code, state, page_url = await approve_for_paste(started["url"])
    pasted = {
        "code#state": f"{code}#{state}",
        "redirect URL": page_url,
        "code=…&state=…": f"code={code}&state={state}",
    }[shape]

    done = await editor.request(
        "sidecar/loginComplete", {"loginId": started["loginId"], "input": f"  {pasted}\n"}
    )
    [pair] = fake.oauth.issued
    assert done["provider"] == "anthropic"
    assert done["credential"]["id"] == "anthropic:work"
    assert done["credential"]["fingerprint"].endswith(pair.access[-4:])
    assert done["status"]["text"] == "🔑 ok"
    assert stored(home)["anthropic:work"].refresh == pair.refresh
    # The code was exchanged with the same redirect_uri and the login's verifier
    # (the fake checks both), exactly once.
    assert fake.oauth.exchange_requests == 1


async def test_a_wrong_state_is_rejected_and_the_login_keeps_waiting(
    editor: SidecarClient, fake: FakeProvider, home: Path
) -> None:
    started = await editor.request("sidecar/login", {"provider": "anthropic", "mode": "paste"})
    code, state, _ = await approve_for_paste(started["url"])
    login_id = started["loginId"]

    with pytest.raises(JsonRpcException) as err:
        await editor.request(
            "sidecar/loginComplete", {"loginId": login_id, "input": f"{code}#not{state}"}
        )
    assert err.value.code == -32005
    assert err.value.data == {"provider": "anthropic", "reason": "state_mismatch"}
    assert "state does not match" in err.value.message
    assert fake.oauth.exchange_requests == 0

    for garbage in ("", "hello world", "just-a-code", "https://example.com/callback?x=1"):
        with pytest.raises(JsonRpcException) as err:
            await editor.request("sidecar/loginComplete", {"loginId": login_id, "input": garbage})
        assert err.value.code == -32602 and err.value.data == {"field": "input"}

    done = await editor.request(
        "sidecar/loginComplete", {"loginId": login_id, "input": f"{code}#{state}"}
    )
    assert done["credential"]["id"] == "anthropic:default"
    with pytest.raises(JsonRpcException) as err:
        await editor.request("sidecar/loginComplete", {"loginId": login_id, "input": "a#b"})
    assert err.value.code == -32005 and err.value.data["reason"] == "ended"


async def test_a_login_times_out(home: Path, fake: FakeProvider) -> None:
    editor = await start_sidecar(home, "neovim", sidecar_env(fake, LLM_SIDECAR_OAUTH_TIMEOUT="0.5"))
    try:
        started = await editor.request("sidecar/login", {"provider": "anthropic"})
        port = port_of(started["url"])
        failed = await editor.wait_login(started["loginId"])
        assert failed["outcome"] == "failed" and "timed out" in failed["message"]
        assert await port_closed(port)
        async with asyncio.timeout(5):
            while not any("timed out" in m for m in messages(editor)):
                await asyncio.sleep(0.02)
        with pytest.raises(JsonRpcException) as err:
            await editor.request(
                "sidecar/loginComplete", {"loginId": started["loginId"], "input": "a#b"}
            )
        assert err.value.code == -32005 and "timed out" in err.value.message
        assert not stored(home)
    finally:
        await stop_sidecar(editor)


async def test_cancel_stops_the_login_and_closes_the_callback(
    editor: SidecarClient, fake: FakeProvider, home: Path
) -> None:
    started = await editor.request("sidecar/login", {"provider": "anthropic"})
    port = port_of(started["url"])
    cancelled = await editor.request("sidecar/loginCancel", {"loginId": started["loginId"]})
    assert cancelled == {"cancelled": True}
    assert await port_closed(port, timeout=0.5)
    ended = await editor.wait_login(started["loginId"])
    assert ended["outcome"] == "cancelled" and "cancelled" in ended["message"]
    again = await editor.request("sidecar/loginCancel", {"loginId": started["loginId"]})
    assert again == {"cancelled": False}
    assert await editor.request("sidecar/loginCancel", {"loginId": "l-unknown"}) == {
        "cancelled": False
    }
    assert not stored(home) and fake.oauth.exchange_requests == 0
    assert not messages(editor)  # a cancel is not an error to show


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


async def test_a_busy_callback_port_falls_back_to_paste(
    home: Path, fake: FakeProvider, busy_port: int
) -> None:
    # The user named the port (LLM_SIDECAR_OAUTH_CALLBACK_PORT): another port would not
    # be the one they set up, so a busy one means paste. (The default port, when busy,
    # is swapped for a free one instead: see test_login_units.)
    env = sidecar_env(fake, LLM_SIDECAR_OAUTH_CALLBACK_PORT=str(busy_port))
    editor = await start_sidecar(home, "visual-studio-code", env)
    try:
        started = await editor.request("sidecar/login", {"provider": "anthropic"})
        assert started["mode"] == "paste"
        assert query(started["url"])["redirect_uri"] == fake.url + "/oauth/code/callback"
        assert "busy" in started["message"] and str(busy_port) in started["message"]
        code, state, _ = await approve_for_paste(started["url"])
        done = await editor.request(
            "sidecar/loginComplete", {"loginId": started["loginId"], "input": f"{code}#{state}"}
        )
        assert done["credential"]["kind"] == "oauth"
    finally:
        await stop_sidecar(editor)


def _non_loopback_address() -> str | None:
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        infos = []
    addresses = {info[4][0] for info in infos}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: only picks a source address
            addresses.add(probe.getsockname()[0])
        except OSError:
            pass
    return next((a for a in sorted(addresses) if not a.startswith("127.")), None)


async def _raw(port: int, request: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request.encode())
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
        return int(status_line.split()[1])
    finally:
        writer.close()


async def test_the_callback_answers_only_its_path_with_the_right_state_on_loopback(
    editor: SidecarClient, fake: FakeProvider
) -> None:
    started = await editor.request("sidecar/login", {"provider": "anthropic"})
    url = started["url"]
    port, state = port_of(url), query(url)["state"]
    host = f"localhost:{port}"

    def get(target: str, host: str = host, method: str = "GET") -> str:
        return f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"

    assert await _raw(port, get("/")) == 404
    assert await _raw(port, get(f"/other?code=c&state={state}")) == 404
    assert await _raw(port, get("/callback?code=c&state=forged")) == 400
    assert await _raw(port, get("/callback?code=c")) == 400
    assert await _raw(port, get(f"/callback?code=c&state={state}", host="evil.example")) == 421
    assert await _raw(port, get(f"/callback?code=c&state={state}", host=f"evil:{port}")) == 421
    assert await _raw(port, get(f"/callback?code=c&state={state}", method="POST")) == 405
    other = _non_loopback_address()
    if other is not None:  # bound to 127.0.0.1 only: another address of this host is refused
        with pytest.raises(OSError):
            await asyncio.wait_for(asyncio.open_connection(other, port), 2)
    assert fake.oauth.exchange_requests == 0

    # None of that ended the login: the real callback still goes through, once.
    page = await approve(url)
    assert page.status_code == 200
    assert (await editor.wait_login(started["loginId"]))["outcome"] == "succeeded"
    assert await port_closed(port)


async def test_only_anthropic_has_a_login(editor: SidecarClient) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("sidecar/login", {"provider": "openai"}, "provider"),
        ("sidecar/login", {"provider": "nope"}, "provider"),
        ("sidecar/login", {"provider": "anthropic", "mode": "browser"}, "mode"),
        ("sidecar/login", {"provider": "anthropic", "profile": "a b"}, "profile"),
        ("sidecar/login", {}, "provider"),
        ("sidecar/logout", {"provider": "groq"}, "provider"),
        ("sidecar/loginComplete", {"loginId": "l-none", "input": "a#b"}, "loginId"),
        ("sidecar/loginComplete", {"input": "a#b"}, "loginId"),
        ("sidecar/loginCancel", {"loginId": 3}, "loginId"),
    ]
    for method, params, field in cases:
        with pytest.raises(JsonRpcException) as err:
            await editor.request(method, params)
        assert err.value.code == -32602, (method, params)
        assert err.value.data == {"field": field}, (method, params)
    with pytest.raises(JsonRpcException) as err:
        await editor.request("sidecar/login", {"provider": "openai"})
    assert "no OAuth login" in err.value.message


async def test_logout_removes_the_login(
    editor: SidecarClient, fake: FakeProvider, home: Path, make_key: Callable[..., str]
) -> None:
    key = make_key()
    await editor.request("sidecar/keyAdd", {"provider": "anthropic", "key": key})
    started = await editor.request("sidecar/login", {"provider": "anthropic", "mode": "paste"})
    code, state, _ = await approve_for_paste(started["url"])
    await editor.request(
        "sidecar/loginComplete", {"loginId": started["loginId"], "input": f"{code}#{state}"}
    )
    await editor.wait_status(lambda s: s["text"] == "🔑 1/2")

    out = await editor.request("sidecar/logout", {"provider": "anthropic"})
    [pair] = fake.oauth.issued
    assert out["removed"]["id"] == "anthropic:default"
    assert out["removed"]["fingerprint"].endswith(pair.access[-4:])
    assert out["status"]["text"] == "🔑 ok" and out["status"]["size"] == 1
    assert "anthropic:default" not in stored(home)
    assert pair.access not in (home / "credentials.json").read_text()
    again = await editor.request("sidecar/logout", {"provider": "anthropic", "profile": "default"})
    assert "removed" not in again
