"""Imports of pi's and Claude Code's credential files: copied in, never changed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.rotation.keypool import KeyPool
from sidecar.sources import import_claude_code, import_pi
from sidecar.store import Store


@pytest.fixture
def keypool(home: Path) -> KeyPool:
    return KeyPool(Store(home), env={})


def test_pi_auth_and_key_rotation(
    tmp_path: Path, keypool: KeyPool, make_key: Callable[..., str]
) -> None:
    api, access, refresh = make_key(), make_key("sk-ant-oat01-"), make_key("sk-ant-ort01-")
    pooled = [make_key("sk-ant-oat01-"), make_key("sk-ant-oat01-")]
    openai_key = make_key("sk-proj-")
    auth = tmp_path / "auth.json"
    auth.write_text(
        json.dumps(
            {
                "anthropic": {
                    "type": "oauth",
                    "access": access,
                    "refresh": refresh,
                    "expires": 1_900_000_000_000,
                },
                "openai": {"type": "api_key", "key": openai_key},
                "some-other-tool": {"type": "api_key", "key": api},
            }
        )
    )
    rotation = tmp_path / "key-rotation.json"
    rotation.write_text(json.dumps({"keys": pooled}))
    before = auth.read_bytes(), rotation.read_bytes()

    results = import_pi(keypool, auth, rotation)

    assert [(r.id, r.outcome) for r in results[:2]] == [
        ("anthropic:pi", "added"),
        ("openai:pi", "added"),
    ]
    assert [r.outcome for r in results[2:]] == ["added", "added"]
    creds = {c.id: c for c in keypool.credentials("anthropic")}
    login = creds["anthropic:pi"]
    assert (login.kind, login.refresh, login.expires_at) == ("oauth", refresh, 1_900_000_000.0)
    assert sum(c.kind == "token" and c.source == "pool" for c in creds.values()) == 2
    assert keypool.status("anthropic").text == "🔑 1/3"
    assert (auth.read_bytes(), rotation.read_bytes()) == before  # read-only

    again = import_pi(keypool, auth, rotation)
    assert {r.outcome for r in again} == {"unchanged"}


def test_claude_code_credentials(
    tmp_path: Path, keypool: KeyPool, make_key: Callable[..., str]
) -> None:
    access, refresh = make_key("sk-ant-oat01-"), make_key("sk-ant-ort01-")
    path = tmp_path / ".credentials.json"
    path.write_text(
        json.dumps(
            {
                "claudeAiOauth": {
                    "accessToken": access,
                    "refreshToken": refresh,
                    "expiresAt": 1_900_000_000_000,
                    "scopes": ["user:inference"],
                    "subscriptionType": "max",
                }
            }
        )
    )
    before = path.read_bytes()
    [result] = import_claude_code(keypool, path)
    assert (result.id, result.outcome) == ("anthropic:claude-code", "added")
    [cred] = keypool.credentials("anthropic")
    assert (cred.kind, cred.secret, cred.refresh) == ("oauth", access, refresh)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "message"),
    [("{oops", "not valid JSON"), ('{"other": 1}', "no claudeAiOauth")],
)
def test_bad_claude_code_file_is_a_clear_error(
    tmp_path: Path, keypool: KeyPool, content: str, message: str
) -> None:
    path = tmp_path / ".credentials.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        import_claude_code(keypool, path)


def test_missing_file_names_its_path(tmp_path: Path, keypool: KeyPool) -> None:
    with pytest.raises(FileNotFoundError, match=r"auth\.json"):
        import_pi(keypool, tmp_path / "auth.json", None)
