"""The llm-sidecar command as a user runs it: a real process, a temporary home."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import leaked


def run(
    home: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if "_API_KEY" not in k and not k.startswith("LLM_SIDECAR")
    }
    result = subprocess.run(
        [sys.executable, "-m", "sidecar", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, "LLM_SIDECAR_HOME": str(home), **(env or {})},
    )
    assert not leaked(result.stdout + result.stderr), "a key was printed"
    return result


def test_key_add_reads_stdin_and_status_shows_the_pool(
    home: Path, make_key: Callable[..., str]
) -> None:
    keys = [make_key(), make_key()]
    added = run(home, "key", "add", "--provider", "anthropic", stdin="\n".join(keys) + "\n")
    assert added.returncode == 0, added.stderr
    assert added.stdout.count("added:") == 2
    status = run(home, "status")
    assert "anthropic  🔑 1/2" in status.stdout
    assert keys[0][-4:] in status.stdout


def test_status_json_is_the_wire_result(home: Path, make_key: Callable[..., str]) -> None:
    run(home, "key", "add", "-p", "openai", stdin=make_key("sk-proj-"))
    result = json.loads(run(home, "status", "--json").stdout)
    [openai] = result["providers"]
    assert openai["provider"] == "openai" and openai["text"] == "🔑 ok"
    assert openai["credentials"][0]["source"] == "pool"


def test_check_exit_0_when_all_is_well(home: Path, make_key: Callable[..., str]) -> None:
    run(home, "key", "add", "-p", "anthropic", stdin=make_key())
    assert run(home, "status", "--check").returncode == 0


def test_check_exit_1_with_no_credentials(home: Path) -> None:
    assert run(home, "status", "--check").returncode == 1
    assert run(home, "status", "--check", "--provider", "openai").returncode == 1


def test_check_exit_1_when_a_token_expired(home: Path, make_key: Callable[..., str]) -> None:
    token = make_key("sk-ant-oat01-")
    assert (
        run(
            home, "auth", "paste-token", "-p", "anthropic", "--expires-in-days", "-1", stdin=token
        ).returncode
        == 0
    )
    result = run(home, "status", "--check")
    assert result.returncode == 1
    assert "expired" in result.stdout


def test_check_exit_2_when_a_token_expires_within_a_day(
    home: Path, make_key: Callable[..., str]
) -> None:
    run(
        home,
        "auth",
        "paste-token",
        "-p",
        "anthropic",
        "--expires-in-days",
        "0.5",
        stdin=make_key("sk-ant-oat01-"),
    )
    result = run(home, "status", "--check")
    assert result.returncode == 2
    assert "🔑 expires in" in result.stdout


def test_paste_token_checks_the_shape(home: Path, make_key: Callable[..., str]) -> None:
    result = run(home, "auth", "paste-token", "-p", "anthropic", stdin=make_key("sk-ant-api03-"))
    assert result.returncode == 1
    assert "sk-ant-oat01-" in result.stderr
    ok = run(
        home,
        "auth",
        "paste-token",
        "-p",
        "anthropic",
        "--profile",
        "work",
        stdin=make_key("sk-ant-oat01-"),
    )
    assert ok.returncode == 0 and "anthropic:work" in ok.stdout


def test_auth_order(home: Path, make_key: Callable[..., str]) -> None:
    for name in ("a", "b"):
        run(
            home,
            "auth",
            "paste-token",
            "-p",
            "anthropic",
            "--profile",
            name,
            stdin=make_key("sk-ant-oat01-"),
        )
    assert run(
        home, "auth", "order", "set", "-p", "anthropic", "anthropic:b", "anthropic:a"
    ).stdout.split() == [
        "anthropic:b",
        "anthropic:a",
    ]
    status = json.loads(run(home, "status", "--json").stdout)
    assert [c["id"] for c in status["providers"][0]["credentials"]] == [
        "anthropic:b",
        "anthropic:a",
    ]
    bad = run(home, "auth", "order", "set", "-p", "anthropic", "anthropic:nope")
    assert bad.returncode == 1 and "unknown" in bad.stderr
    assert "no explicit order" in run(home, "auth", "order", "clear", "-p", "anthropic").stdout


def test_key_remove_and_reset(home: Path, make_key: Callable[..., str]) -> None:
    run(home, "key", "add", "-p", "anthropic", stdin=f"{make_key()}\n{make_key()}\n")
    removed = run(home, "key", "remove", "-p", "anthropic", "--index", "1")
    assert removed.returncode == 0 and "removed:" in removed.stdout
    assert "🔑 ok" in run(home, "key", "reset", "-p", "anthropic").stdout
    assert run(home, "key", "remove", "-p", "anthropic").returncode == 2  # neither given


def test_doctor_reports_and_fixes_permissions(home: Path, make_key: Callable[..., str]) -> None:
    run(home, "key", "add", "-p", "anthropic", stdin=make_key())
    (home / "pool.json").chmod(0o644)
    report = run(home, "doctor")
    assert report.returncode == 1 and "pool.json is mode 644" in report.stdout
    assert "readable by others" in run(home, "status").stdout
    fixed = run(home, "doctor", "--fix")
    assert "fixed:" in fixed.stdout
    assert stat.S_IMODE((home / "pool.json").stat().st_mode) == 0o600
    assert run(home, "doctor").returncode == 0


def test_doctor_names_environment_keys_by_fingerprint(
    home: Path, make_key: Callable[..., str]
) -> None:
    key = make_key("gsk_")
    out = run(home, "doctor", env={"GROQ_API_KEY": key}).stdout
    assert "GROQ_API_KEY" in out and key[-4:] in out


def test_import_commands(home: Path, tmp_path: Path, make_key: Callable[..., str]) -> None:
    creds = tmp_path / "cc.json"
    creds.write_text(
        json.dumps(
            {
                "claudeAiOauth": {
                    "accessToken": make_key("sk-ant-oat01-"),
                    "refreshToken": make_key("sk-ant-ort01-"),
                    "expiresAt": int((time.time() + 3600) * 1000),
                }
            }
        )
    )
    result = run(home, "import", "claude-code", "--file", str(creds))
    assert result.returncode == 0 and "added:" in result.stdout
    missing = run(home, "import", "pi", "--auth", str(tmp_path / "nope.json"))
    assert missing.returncode == 1 and "nope.json does not exist" in missing.stderr


@pytest.mark.parametrize("args", [["key"], ["status", "--provider", "nope"], ["bogus"]])
def test_usage_errors_exit_2(home: Path, args: list[str]) -> None:
    assert run(home, *args).returncode == 2


@pytest.mark.parametrize("what", ["fifo", "dev-zero"])
def test_importing_from_a_fifo_or_a_device_is_refused_not_hung(
    home: Path, tmp_path: Path, what: str
) -> None:
    # Another tool's file is read like the home's own: only a regular file, capped.
    creds = tmp_path / ".credentials.json"
    if what == "fifo":
        os.mkfifo(creds)
    else:
        creds.symlink_to("/dev/zero")
    result = run(home, "import", "claude-code", "--file", str(creds))
    assert result.returncode == 1
    assert "not a regular file" in result.stderr and "nothing imported" in result.stderr
    assert "not a regular file" in run(home, "import", "pi", "--auth", str(creds)).stderr
