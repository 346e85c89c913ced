"""The gateway is one more member of the team: what it sees, an editor elsewhere skips."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from sidecar.fake import FakeProvider
from tests.gateway.conftest import free_port, start_gateway
from tests.server.conftest import server_env, stop_sidecar
from tests.team.conftest import RedisServer
from tests.team.test_two_machines import ask, machine, requests_with, team_env, two_keys


async def test_a_rate_limit_through_the_gateway_reaches_an_editor_on_another_machine(
    tmp_path: Path, fake: FakeProvider, redis_server: RedisServer, make_key: Callable[..., str]
) -> None:
    first, second = two_keys(fake, make_key)
    env = team_env(fake, redis_server.url)
    editor = await machine(tmp_path / "b", env, [first, second])

    gateway_home = tmp_path / "a"
    for key in (first, second):
        subprocess.run(
            [sys.executable, "-m", "sidecar", "key", "add", "--provider", "anthropic"],
            input=key,
            env=server_env(gateway_home),
            check=True,
            capture_output=True,
            text=True,
        )
    port = free_port()
    proc, _ = start_gateway(server_env(gateway_home, env), "--port", str(port))
    try:
        token = json.loads((gateway_home / "gateway.json").read_text())["token"]
        with httpx.Client(timeout=30) as client:
            resp = client.post(
                f"http://127.0.0.1:{port}/anthropic/v1/messages",
                headers={"x-api-key": token},
                json={
                    "model": "claude-sonnet-4-5",
                    "max_tokens": 9,
                    "messages": [{"role": "user", "content": "hi"}],
                },
            )
        assert resp.status_code == 200 and requests_with(fake, first) == 1

        await editor.wait_status(lambda s: s["text"] == "🔑 2/2 (rotated)", 15)
        answered = await editor.request("sidecar/stream", ask())
        assert answered["attempts"] == 1 and requests_with(fake, first) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        await stop_sidecar(editor)
