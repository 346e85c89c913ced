"""One policy for a bad setting, seen from outside: the CLI refuses to start naming the
variable; the server stays up, logs it and shows it as an Error in every status."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.fake import FakeProvider, Reply, Text
from tests.cli.test_cli import run
from tests.conftest import answer_text
from tests.reliability.support import RawServer

BAD = {"LLM_SIDECAR_READ_TIMEOUT": "soon"}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LLM_SIDECAR_READ_TIMEOUT", "soon"),
        ("LLM_SIDECAR_MAX_EVENT_BYTES", "12 parsecs"),
        ("LLM_SIDECAR_OAUTH_CALLBACK_PORT", "70000"),
        ("LLM_SIDECAR_OAUTH_TIMEOUT", "-1"),
    ],
)
def test_the_cli_refuses_to_start_naming_the_variable(
    home: Path, variable: str, value: str
) -> None:
    result = run(home, "status", env={variable: value})
    assert result.returncode != 0
    assert variable in result.stderr
    assert result.stdout == ""  # nothing ran on a default the user did not ask for


def test_a_bad_value_in_the_homes_env_file_is_refused_too(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / ".env").write_text("LLM_SIDECAR_TOTAL_TIMEOUT=forever\n")
    result = run(home, "key", "list", "--provider", "anthropic")
    assert result.returncode != 0
    assert "LLM_SIDECAR_TOTAL_TIMEOUT" in result.stderr


def test_doctor_lists_the_bad_value_as_a_problem(home: Path) -> None:
    result = run(home, "doctor", env=BAD)
    assert result.returncode == 1
    assert "problem: LLM_SIDECAR_READ_TIMEOUT='soon'" in result.stdout


def test_the_server_stays_up_logs_it_and_shows_an_error_status(
    tmp_path: Path, home: Path, make_key: Callable[..., str]
) -> None:
    key = make_key()
    log_file = tmp_path / "sidecar.log"
    with FakeProvider() as fake:
        fake.script(key, [], default=Reply([Text("still answering")]))
        env = {"ANTHROPIC_BASE_URL": fake.url, **BAD}
        args = ["serve", "--log-file", str(log_file)]
        with RawServer(home, args=args, env=env) as server:
            server.initialize()
            added = server.request("sidecar/keyAdd", {"provider": "anthropic", "key": key})
            assert added["result"]["added"], added
            [status] = server.request("sidecar/status", {"provider": "anthropic"})["result"][
                "providers"
            ]
            assert status["kind"] == "Error"
            assert "LLM_SIDECAR_READ_TIMEOUT" in status["message"]
            pushed = [
                m["params"]
                for m in server.received
                if m.get("method") == "sidecar/didChangeStatus"
                and m["params"]["provider"] == "anthropic"
            ]
            assert pushed and all(p["kind"] == "Error" for p in pushed)
            ask = {
                "provider": "anthropic",
                "model": "claude-sonnet-4-5",
                "maxTokens": 16,
                "messages": [{"role": "user", "content": "hi"}],
            }
            reply = server.request("sidecar/stream", ask)
            assert answer_text(reply["result"]) == "still answering"  # the default timeout serves
    assert "LLM_SIDECAR_READ_TIMEOUT='soon'" in log_file.read_text()
