"""Accounts from the terminal: imports, pasted tokens, profile names, order, Azure maps.

Each test runs the real ``llm-sidecar`` command on a temporary home, as a user would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sidecar.fake import FakeProvider, Reply, Text, TokenPair
from tests.cli.test_cli import run
from tests.conftest import TEST_SECRETS
from tests.oauth.support import sidecar_env


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        provider.oauth.on_issue = TEST_SECRETS.add  # issued tokens are checked for leaks
        yield provider


def status_of(home: Path, env: dict[str, str] | None = None) -> dict[str, dict[str, str]]:
    """``llm-sidecar status --json``: every anthropic credential by id."""
    result = run(home, "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    [anthropic] = [
        p for p in json.loads(result.stdout)["providers"] if p["provider"] == "anthropic"
    ]
    return {c["id"]: c for c in anthropic["credentials"]}


# -- re-imports and re-pastes start afresh ------------------------------------------


def _write_export(source: str, path: Path, access: str, refresh: str) -> list[str]:
    """pi's auth.json or Claude Code's .credentials.json holding one login; the import args."""
    expires = int((time.time() + 3600) * 1000)
    if source == "claude-code":
        doc: dict[str, object] = {
            "claudeAiOauth": {"accessToken": access, "refreshToken": refresh, "expiresAt": expires}
        }
        path.write_text(json.dumps(doc))
        return ["import", "claude-code", "--file", str(path)]
    doc = {"anthropic": {"type": "oauth", "access": access, "refresh": refresh, "expires": expires}}
    path.write_text(json.dumps(doc))
    return ["import", "pi", "--auth", str(path), "--rotation", str(path.parent / "none.json")]


@pytest.mark.parametrize(
    ("source", "profile"), [("claude-code", "anthropic:claude-code"), ("pi", "anthropic:pi")]
)
def test_reimporting_fresh_tokens_clears_the_rejected_state(
    home: Path,
    tmp_path: Path,
    fake: FakeProvider,
    make_key: Callable[..., str],
    source: str,
    profile: str,
) -> None:
    env = sidecar_env(fake)
    export = tmp_path / "export.json"
    # A login the provider no longer accepts: a refused access token, a spent refresh token.
    args = _write_export(source, export, make_key("sk-ant-oat01-"), make_key("sk-ant-ort01-"))
    assert run(home, *args, env=env).returncode == 0
    failed = run(home, "ask", "hello", env=env)
    assert failed.returncode == 1
    assert status_of(home, env)[profile]["state"] == "rejected"

    fresh: TokenPair = fake.oauth.issue()
    args = _write_export(source, export, fresh.access, fresh.refresh)
    again = run(home, *args, env=env)
    assert again.returncode == 0, again.stderr
    assert "updated" in again.stdout
    assert status_of(home, env)[profile]["state"] == "ok"
    answered = run(home, "ask", "hello", env=env)
    assert answered.returncode == 0, answered.stderr
    assert fresh.access[-4:] in answered.stderr  # "answered by <its fingerprint>"


# -- profile names and duplicate tokens -----------------------------------------------


def test_a_bad_profile_name_is_refused_by_paste_token_as_by_logout(
    home: Path, make_key: Callable[..., str]
) -> None:
    token = make_key("sk-ant-oat01-")
    pasted = run(
        home,
        "auth",
        "paste-token",
        "--provider",
        "anthropic",
        "--profile",
        "bad name!",
        stdin=token,
    )
    assert pasted.returncode == 1
    assert "profile" in pasted.stderr and "letters, digits" in pasted.stderr
    logout = run(home, "logout", "anthropic", "--profile", "bad name!")
    assert logout.returncode == 1 and "letters, digits" in logout.stderr
    assert (
        not (home / "credentials.json").exists()
        or token not in (home / "credentials.json").read_text()
    )


def test_the_same_token_under_a_second_name_is_refused_naming_the_first(
    home: Path, make_key: Callable[..., str]
) -> None:
    token = make_key("sk-ant-oat01-")
    first = run(home, "auth", "paste-token", "-p", "anthropic", "--profile", "work", stdin=token)
    assert first.returncode == 0, first.stderr
    second = run(home, "auth", "paste-token", "-p", "anthropic", "--profile", "home", stdin=token)
    assert second.returncode == 1
    assert "already saved as profile anthropic:work" in second.stderr
    assert list(status_of(home)) == ["anthropic:work"]
    # The same name again is a replacement, not a duplicate.
    again = run(home, "auth", "paste-token", "-p", "anthropic", "--profile", "work", stdin=token)
    assert again.returncode == 0, again.stderr


# -- the explicit order ----------------------------------------------------------------


def test_order_set_accepts_every_id_status_shows(home: Path, make_key: Callable[..., str]) -> None:
    env = {"ANTHROPIC_API_KEY": make_key()}
    assert run(home, "key", "add", "-p", "anthropic", stdin=make_key(), env=env).returncode == 0
    ids = list(status_of(home, env))
    assert "env:ANTHROPIC_API_KEY" in ids and len(ids) == 2
    wanted = list(reversed(ids))
    result = run(home, "auth", "order", "set", "-p", "anthropic", *wanted, env=env)
    assert result.returncode == 0, result.stderr
    assert list(status_of(home, env)) == wanted
    unknown = run(home, "auth", "order", "set", "-p", "anthropic", "env:NOPE", env=env)
    assert (
        unknown.returncode == 1 and "unknown anthropic credential id(s): env:NOPE" in unknown.stderr
    )


# -- the pool policy and the headroom windows (issue 15) ----------------------------


def test_policy_set_is_kept_in_the_home_and_a_bad_one_is_refused(home: Path) -> None:
    assert run(home, "auth", "policy", "get", "-p", "anthropic").stdout.strip() == (
        "anthropic: sticky"
    )
    result = run(home, "auth", "policy", "set", "-p", "anthropic", "primary")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "anthropic: primary"
    assert run(home, "auth", "policy", "get", "-p", "anthropic").stdout.strip() == (
        "anthropic: primary"
    )
    bad = run(home, "auth", "policy", "set", "-p", "anthropic", "random")
    assert bad.returncode == 2 and "invalid choice: 'random'" in bad.stderr


def test_status_shows_the_windows_the_last_answer_reported(
    home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    key = make_key()
    windows = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "3",
        "anthropic-ratelimit-requests-reset": "2030-01-01T00:00:00Z",
        "anthropic-ratelimit-tokens-limit": "80000",
        "anthropic-ratelimit-tokens-remaining": "72000",
        "anthropic-ratelimit-tokens-reset": "2030-01-01T00:00:00Z",
    }
    fake.script(key, [], default=Reply([Text("ok")], headers=windows))
    env = {"ANTHROPIC_API_KEY": key, "ANTHROPIC_BASE_URL": fake.url}
    assert run(home, "ask", "-p", "anthropic", "hi", env=env).returncode == 0
    shown = run(home, "status", env=env)
    assert "anthropic  🔑 ok · 6% left" in shown.stdout, shown.stdout
    assert "sonnet requests: 3/50 left (6%), resets " in shown.stdout
    assert "sonnet tokens: 72000/80000 left (90%)" in shown.stdout
    wire = json.loads(run(home, "status", "--json", env=env).stdout)
    (cred,) = wire["providers"][0]["credentials"]
    assert {w["name"]: w["percentLeft"] for w in cred["windows"]} == {
        "requests": 6,
        "tokens": 90,
    }


# -- Azure deployment maps ---------------------------------------------------------


def test_pis_deployment_name_map_is_honoured(home: Path, make_key: Callable[..., str]) -> None:
    key = make_key("az-")
    with FakeProvider() as fake:
        fake.script(key, [], default=Reply([Text("Mapped.")]))
        result = run(
            home,
            "ask",
            "--provider",
            "azure-openai",
            "--model",
            "gpt-4o",
            "hello",
            env={
                "AZURE_OPENAI_API_KEY": key,
                "AZURE_OPENAI_BASE_URL": fake.url,
                "AZURE_OPENAI_DEPLOYMENT_NAME_MAP": "gpt-4o=team-4o,o3=team-o3",
            },
        )
        paths = [r.path for r in fake.requests]
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Mapped."
    assert paths and paths[0].startswith("/openai/deployments/team-4o/chat/completions")


def test_a_deployment_map_that_cannot_be_parsed_names_its_variable(
    home: Path, make_key: Callable[..., str]
) -> None:
    for variable in ("AZURE_OPENAI_DEPLOYMENT_NAME_MAP", "AZURE_OPENAI_DEPLOYMENT_MAP"):
        result = run(
            home,
            "ask",
            "--provider",
            "azure-openai",
            "--model",
            "gpt-4o",
            "hello",
            env={
                "AZURE_OPENAI_API_KEY": make_key("az-"),
                # Never contacted: the map is read before any request.
                "AZURE_OPENAI_BASE_URL": "http://127.0.0.1:9",
                variable: "gpt-4o=team-4o,o3",
            },
        )
        assert result.returncode == 1, result.stdout
        assert variable in result.stderr
        assert "model=deployment" in result.stderr
        assert "Traceback" not in result.stderr
