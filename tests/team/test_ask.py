"""`llm-sidecar ask` is a member of the team too: it reads the team's state before it
chooses a key and publishes its outcome before it exits, and never waits long for it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sidecar.fake import FakeProvider
from tests.server.conftest import server_env, stop_sidecar
from tests.team.conftest import RedisServer, free_port
from tests.team.test_two_machines import (
    ANSWER,
    ask,
    machine,
    online,
    requests_with,
    team_env,
    two_keys,
)
from tests.team.test_usage import until_usage


def run_ask(home: Path, env: dict[str, str], keys: list[str]) -> subprocess.CompletedProcess[str]:
    cli_env = server_env(home, env)
    for key in keys:
        added = subprocess.run(
            [sys.executable, "-m", "sidecar", "key", "add", "--provider", "anthropic"],
            env=cli_env,
            input=key + "\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert added.returncode == 0, added.stderr
    return subprocess.run(
        [sys.executable, "-m", "sidecar", "ask", "--model", "claude-sonnet-4-5", "What?"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_ask_skips_a_key_the_team_saw_limited_and_publishes_its_outcome(
    tmp_path: Path, fake: FakeProvider, redis_server: RedisServer, make_key: Callable[..., str]
) -> None:
    first, second = two_keys(fake, make_key)
    env = team_env(fake, redis_server.url)
    a = await machine(tmp_path / "a", env, [first, second])
    try:
        await online(a)
        assert (await a.request("sidecar/stream", ask()))["attempts"] == 2
        done = run_ask(tmp_path / "b", env, [first, second])
        assert done.returncode == 0, done.stderr
        assert "The answer is 42." in done.stdout
        assert "after 1 attempt(s)" in done.stderr
        assert requests_with(fake, first) == 1  # only A's: the CLI never touched it
        # Its answer reached the team before it exited: A shows both requests.
        await until_usage(a, {"requests": 2, "counted": "team"}, 1)
    finally:
        await stop_sidecar(a)


def test_ask_answers_when_the_teams_server_is_down(
    tmp_path: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    key = make_key()
    fake.script(key, [], default=ANSWER)
    env = team_env(fake, f"redis://127.0.0.1:{free_port()}/0")
    done = run_ask(tmp_path / "b", env, [key])
    assert done.returncode == 0, done.stderr
    assert "The answer is 42." in done.stdout
    assert done.stderr.count("team state offline") == 1
