"""``llm-sidecar gateway`` as a user runs it, and what the stdio sidecar does not load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from sidecar.fake import FakeProvider, Reply
from tests.conftest import leaked
from tests.gateway.conftest import free_port, start_gateway
from tests.server.conftest import server_env

BODY = {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}]}


def test_the_stdio_sidecar_does_not_load_the_gateway_or_its_server() -> None:
    code = (
        "import sys, sidecar.rpc.server, sidecar.cli;"
        "print(json.dumps(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('aiohttp', 'yarl', 'multidict')"
        " or m.startswith('sidecar.gateway'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json;" + code], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar", *args],
        env=server_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_host_that_is_not_loopback_is_refused_without_allow_remote(home: Path) -> None:
    done = run_cli(home, "gateway", "--host", "0.0.0.0")
    assert done.returncode == 2
    assert "--allow-remote" in done.stderr


@pytest.mark.parametrize(
    ("shell", "line"),
    [
        ("sh", "export OPENAI_API_KEY='"),
        ("fish", "set -gx OPENAI_API_KEY '"),
        ("powershell", "$env:OPENAI_API_KEY = '"),
    ],
)
def test_gateway_env_prints_the_token_and_urls(home: Path, shell: str, line: str) -> None:
    done = run_cli(home, "gateway", "env", "--shell", shell, "--port", "9999")
    assert done.returncode == 0, done.stderr
    token = json.loads((home / "gateway.json").read_text())["token"]
    assert f"{line}{token}'" in done.stdout
    assert "http://127.0.0.1:9999/anthropic" in done.stdout
    assert "http://127.0.0.1:9999/openai/v1" in done.stdout


def test_the_gateway_command_serves_logs_one_line_and_stops_on_sigterm(
    home: Path, make_key: Callable[..., str]
) -> None:
    key = make_key()
    with FakeProvider() as fake:
        fake.script(key, [], default=Reply("hello from the pool"))
        port = free_port()
        env = server_env(home, {"ANTHROPIC_BASE_URL": fake.url, "ANTHROPIC_API_KEY": key})
        # A shell that ran `eval "$(llm-sidecar gateway env)"` points back at the gateway:
        # those variables must not become the gateway's own settings.
        run_cli(home, "gateway", "env")
        token = json.loads((home / "gateway.json").read_text())["token"]
        env["OPENAI_API_KEY"] = token
        env["OPENAI_BASE_URL"] = f"http://127.0.0.1:{port}/openai/v1"
        proc, line = start_gateway(env, "--port", str(port))
        try:
            with httpx.Client(timeout=10) as client:
                resp = client.post(
                    f"http://127.0.0.1:{port}/anthropic/v1/messages",
                    headers={"x-api-key": token},
                    json={
                        "model": "m",
                        "max_tokens": 9,
                        "messages": [{"role": "user", "content": "hi"}],
                    },
                )
            assert resp.status_code == 200
            assert resp.json()["content"][0]["text"] == "hello from the pool"
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0
        logged = line + err
        assert "anthropic m 200 key=sk-ant-" in logged
        assert not leaked(logged) and token not in logged


def test_a_stdio_sidecar_on_the_same_home_shows_the_gateways_rotation(
    home: Path, make_key: Callable[..., str]
) -> None:
    from sidecar.fake import InvalidKey, RateLimited
    from tests.gateway.conftest import Gateway

    busy, revoked, good = make_key(), make_key(), make_key()
    with FakeProvider() as fake:
        fake.script(busy, [], default=RateLimited(retry_after=300))
        fake.script(revoked, [], default=InvalidKey())
        fake.script(good, [], default=Reply("ok"))
        gw = Gateway(home, {"ANTHROPIC_BASE_URL": fake.url}).start()
        try:
            gw.add_keys("anthropic", [busy, revoked, good])
            with httpx.Client(timeout=10) as client:
                resp = client.post(
                    f"{gw.url}/anthropic/v1/messages",
                    headers=gw.headers(),
                    json={
                        "model": "m",
                        "max_tokens": 9,
                        "messages": [{"role": "user", "content": "hi"}],
                    },
                )
            assert resp.status_code == 200
        finally:
            gw.stop()
    import asyncio

    from tests.server.conftest import start_sidecar, stop_sidecar

    async def status() -> dict[str, object]:
        client = await start_sidecar(home)
        try:
            result: dict[str, object] = await client.request(
                "sidecar/status", {"provider": "anthropic"}
            )
            return result
        finally:
            await stop_sidecar(client)

    result = asyncio.run(status())
    (provider,) = result["providers"]  # type: ignore[misc]
    creds = provider["credentials"]
    assert len(creds) == 2  # the rejected key was evicted
    assert creds[0]["fingerprint"].endswith(busy[-4:])
    assert creds[0]["modelCooldowns"], creds[0]  # its 429 cooled the model it was for
    assert creds[1]["fingerprint"].endswith(good[-4:]) and creds[1]["state"] == "ok"
    assert provider["index"] == 2
    assert not leaked(json.dumps(result))
    assert os.environ.get("LLM_SIDECAR_HOME") == str(home)


def test_sigterm_lets_a_stream_in_flight_end(home: Path, make_key: Callable[..., str]) -> None:
    key = make_key()
    with FakeProvider() as fake:
        # Many small HTTP chunks with a pause after each: still streaming at the SIGTERM.
        fake.script(key, [], default=Reply("word " * 40, chunk=5, interval=0.05))
        port = free_port()
        env = server_env(home, {"ANTHROPIC_BASE_URL": fake.url, "ANTHROPIC_API_KEY": key})
        run_cli(home, "gateway", "env")
        token = json.loads((home / "gateway.json").read_text())["token"]
        proc, _ = start_gateway(env, "--port", str(port))
        try:
            with (
                httpx.Client(timeout=30) as client,
                client.stream(
                    "POST",
                    f"http://127.0.0.1:{port}/anthropic/v1/messages",
                    headers={"x-api-key": token},
                    json={**BODY, "stream": True},
                ) as resp,
            ):
                body = b""
                for chunk in resp.iter_bytes():
                    if not body:
                        proc.send_signal(signal.SIGTERM)  # the stream has begun
                    body += chunk
            assert b"message_stop" in body  # it ran to its end
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
        assert proc.returncode == 0


def test_allow_remote_binds_beyond_loopback_says_so_and_still_wants_the_token(
    home: Path, make_key: Callable[..., str]
) -> None:
    key = make_key()
    with FakeProvider() as fake:
        fake.script(key, [], default=Reply("from afar"))
        port = free_port()
        env = server_env(home, {"ANTHROPIC_BASE_URL": fake.url, "ANTHROPIC_API_KEY": key})
        run_cli(home, "gateway", "env")
        token = json.loads((home / "gateway.json").read_text())["token"]
        # Every address of the machine; the test itself only talks over loopback.
        proc, said = start_gateway(env, "--host", "0.0.0.0", "--allow-remote", "--port", str(port))
        try:
            assert "--allow-remote: open on 0.0.0.0" in said
            assert "anyone who can reach" in said
            url = f"http://127.0.0.1:{port}/anthropic/v1/messages"
            with httpx.Client(timeout=10) as client:
                # A remote client names the machine as it knows it: no Host check here.
                far = {"host": f"devbox.lan:{port}"}
                resp = client.post(url, headers=far, json=BODY)
                assert resp.status_code == 401  # the token is still required
                resp = client.post(url, headers={**far, "x-api-key": token}, json=BODY)
            assert resp.status_code == 200, resp.text
            assert resp.json()["content"][0]["text"] == "from afar"
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert not leaked(said + err) and token not in said + err


def test_without_allow_remote_a_foreign_host_header_is_refused(
    home: Path, make_key: Callable[..., str]
) -> None:
    """The other side of the switch: on loopback the Host check is on (DNS rebinding)."""
    key = make_key()
    with FakeProvider() as fake:
        fake.script(key, [], default=Reply("near"))
        port = free_port()
        env = server_env(home, {"ANTHROPIC_BASE_URL": fake.url, "ANTHROPIC_API_KEY": key})
        run_cli(home, "gateway", "env")
        token = json.loads((home / "gateway.json").read_text())["token"]
        proc, said = start_gateway(env, "--port", str(port))
        try:
            assert "--allow-remote" not in said
            with httpx.Client(timeout=10) as client:
                resp = client.post(
                    f"http://127.0.0.1:{port}/anthropic/v1/messages",
                    headers={"host": f"devbox.lan:{port}", "x-api-key": token},
                    json=BODY,
                )
            assert resp.status_code == 403
            assert not fake.requests
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)


def test_a_damaged_token_file_is_set_aside_and_a_new_token_made(home: Path) -> None:
    home.mkdir(mode=0o700)
    (home / "gateway.json").write_text("{not json")
    done = run_cli(home, "gateway", "env")
    assert done.returncode == 0, done.stderr
    token = json.loads((home / "gateway.json").read_text())["token"]
    assert f"export LLM_SIDECAR_GATEWAY_TOKEN='{token}'" in done.stdout
    assert [p.read_text() for p in home.glob("gateway.json.corrupt-*")] == ["{not json"]
    assert (home / "gateway.json").stat().st_mode & 0o777 == 0o600
    # And it stays the one token from then on.
    assert token in run_cli(home, "gateway", "env").stdout


@pytest.mark.parametrize("marked_by", ["its variable", "its prefix"])
def test_status_in_a_shell_that_ran_gateway_env_shows_no_gateway_token_as_a_key(
    home: Path, make_key: Callable[..., str], marked_by: str
) -> None:
    """``eval "$(llm-sidecar gateway env)"`` exports the token as OPENAI_API_KEY for the
    tools; the sidecar's own environment import there must not take it for a key."""
    real = make_key("sk-proj-")
    env = {**server_env(home), "OPENAI_API_KEY_2": real}
    for line in run_cli(home, "gateway", "env").stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value.strip("'")
    if marked_by == "its prefix":  # a shell that kept OPENAI_API_KEY only
        del env["LLM_SIDECAR_GATEWAY_TOKEN"]
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    ids = [c["id"] for p in json.loads(done.stdout)["providers"] for c in p["credentials"]]
    assert "env:OPENAI_API_KEY" not in ids
    assert "env:OPENAI_API_KEY_2" in ids  # the user's own key still counts
