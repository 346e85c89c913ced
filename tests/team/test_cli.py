"""`llm-sidecar status` and `doctor` say where the state lives and whether it answers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.server.conftest import server_env
from tests.team.conftest import RedisServer, free_port


def run(home: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = server_env(home, {"LLM_SIDECAR_STATE": url, "LLM_SIDECAR_STATE_NAMESPACE": "acme"})
    return subprocess.run(
        [sys.executable, "-m", "sidecar", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_status_and_doctor_with_the_server_up(home: Path, redis_server: RedisServer) -> None:
    shown = f"redis://127.0.0.1:{redis_server.port}/0 (acme)"
    status = run(home, redis_server.url, "status")
    assert f"team state: {shown}: online" in status.stdout
    assert json.loads(run(home, redis_server.url, "status", "--json").stdout)["state"] == {
        "backend": "redis",
        "where": shown,
        "link": "online",
    }
    doctor = run(home, redis_server.url, "doctor")
    assert f"team state: {shown}: online" in doctor.stdout and "Redis 7" in doctor.stdout


def test_doctor_names_an_unreachable_server_without_its_password(home: Path) -> None:
    url = f"redis://teammate:hunter22@127.0.0.1:{free_port()}/0"
    doctor = run(home, url, "doctor")
    assert doctor.returncode == 1
    assert "problem: team state: redis://127.0.0.1" in doctor.stdout and "offline" in doctor.stdout
    assert "hunter22" not in doctor.stdout + doctor.stderr
