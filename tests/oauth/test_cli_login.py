"""``llm-sidecar login`` / ``logout`` as a user runs them: a real process, the fake as the
authorization server, and the test playing the browser and the keyboard."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from sidecar.fake import FakeProvider
from tests.conftest import leaked
from tests.oauth.support import approve, approve_for_paste, seed_login, sidecar_env, stored


def _env(home: Path, fake: FakeProvider, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LLM_SIDECAR")}
    # BROWSER=true: webbrowser "opens" the page with the no-op `true` command.
    return {**base, **sidecar_env(fake), "LLM_SIDECAR_HOME": str(home), "BROWSER": "true", **extra}


async def _start(home: Path, fake: FakeProvider, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sidecar",
        "login",
        "anthropic",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(home, fake),
    )


async def _url(process: asyncio.subprocess.Process) -> tuple[str, list[str]]:
    """The authorization URL the command printed, and what it printed up to there."""
    assert process.stdout is not None
    seen: list[str] = []
    async with asyncio.timeout(15):
        while True:
            line = (await process.stdout.readline()).decode()
            assert line, f"the command ended early: {seen}"
            seen.append(line)
            if line.strip().startswith("http"):
                return line.strip(), seen


async def _finish(process: asyncio.subprocess.Process, stdin: bytes = b"") -> tuple[int, str]:
    out, err = await asyncio.wait_for(process.communicate(stdin), 15)
    text = out.decode() + err.decode()
    assert not leaked(text), "a token was printed"
    assert process.returncode is not None
    return process.returncode, text


async def test_cli_paste_login(home: Path, fake: FakeProvider) -> None:
    process = await _start(home, fake, "--paste", "--profile", "work")
    url, _ = await _url(process)
    code, state, _ = await approve_for_paste(url)
    code_, text = await _finish(process, f"\nnot a code\n{code}#{state}\n".encode())
    assert code_ == 0, text
    [pair] = fake.oauth.issued
    assert "try again" in text  # the garbage line, before the good one
    assert "saved as profile anthropic:work" in text and pair.access[-4:] in text
    assert stored(home)["anthropic:work"].refresh == pair.refresh


async def test_cli_loopback_login(home: Path, fake: FakeProvider) -> None:
    process = await _start(home, fake)
    url, _ = await _url(process)
    page = await approve(url)
    assert page.status_code == 200
    code, text = await _finish(process)
    assert code == 0, text
    assert "anthropic:default" in stored(home)


async def test_cli_paste_login_without_input_is_cancelled(home: Path, fake: FakeProvider) -> None:
    process = await _start(home, fake, "--paste")
    await _url(process)
    code, text = await _finish(process, b"")
    assert code == 1 and "no code was pasted" in text
    assert not stored(home)


def _run(home: Path, fake: FakeProvider, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "sidecar", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(home, fake),
    )
    assert not leaked(result.stdout + result.stderr)
    return result


def test_cli_logout(home: Path, fake: FakeProvider) -> None:
    pair = fake.oauth.issue()
    seed_login(home, pair, expires_at=time.time() + 3600, profile="anthropic:work")
    out = _run(home, fake, "logout", "anthropic", "--profile", "work")
    assert out.returncode == 0 and "removed" in out.stdout and pair.access[-4:] in out.stdout
    assert not stored(home)
    again = _run(home, fake, "logout", "anthropic", "--profile", "work")
    assert again.returncode == 0 and "no anthropic login" in again.stdout


def test_cli_login_names_the_providers_that_have_one(home: Path, fake: FakeProvider) -> None:
    out = _run(home, fake, "login", "openai")
    assert out.returncode == 2 and "openai has no OAuth login" in out.stderr
    assert "key add --provider openai" in out.stderr


def test_a_plain_http_token_endpoint_on_another_machine_is_refused(
    home: Path, fake: FakeProvider
) -> None:
    # Codes and refresh tokens go to the token endpoint: clear text to another machine
    # is refused before the browser opens, naming the variable and the opt-in.
    env = {**_env(home, fake), "LLM_SIDECAR_ANTHROPIC_TOKEN_URL": "http://10.1.2.3:8080/token"}
    out = subprocess.run(
        [sys.executable, "-m", "sidecar", "login", "anthropic", "--paste"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        input="",
    )
    assert out.returncode != 0
    assert "LLM_SIDECAR_ANTHROPIC_TOKEN_URL is http://10.1.2.3:8080" in out.stderr
    assert "LLM_SIDECAR_ALLOW_INSECURE_HTTP=1" in out.stderr
    assert "http" not in out.stdout  # no authorization URL was offered
    doctor = subprocess.run(
        [sys.executable, "-m", "sidecar", "doctor"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert doctor.returncode == 1
    assert "problem: LLM_SIDECAR_ANTHROPIC_TOKEN_URL is http://10.1.2.3:8080" in doctor.stdout
