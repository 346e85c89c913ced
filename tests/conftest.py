"""Fixtures shared by every test domain.

Secrets: every key a test uses comes from ``make_key``, which records it. A
hook (in the root conftest.py) scans each test's captured output and log for
those keys and fails the test if one shows up; the end-to-end client records
every JSON-RPC message it receives for the same scan.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sidecar.engine import Engine

TEST_SECRETS: set[str] = set()


@pytest.fixture
def make_key() -> Callable[..., str]:
    """A fresh, recorded fake key: ``make_key()`` or ``make_key("sk-ant-oat01-")``."""

    def make(prefix: str = "sk-ant-api03-") -> str:
        key = prefix + secrets.token_urlsafe(24)
        TEST_SECRETS.add(key)
        return key

    return make


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty sidecar home, and an environment without provider keys."""
    path = tmp_path / "home"
    monkeypatch.setenv("LLM_SIDECAR_HOME", str(path))
    for name in list(__import__("os").environ):
        if "_API_KEY" in name or name.startswith("LLM_SIDECAR_LIVE") or name.endswith("_TOKEN"):
            monkeypatch.delenv(name)
    return path


def leaked(text: str) -> list[str]:
    """The recorded test secrets that appear in ``text``."""
    return [s for s in TEST_SECRETS if s in text]


def answer_text(result: dict[str, Any]) -> str:
    """The answer's text in a ``sidecar/stream`` result: its text blocks, joined."""
    return "".join(b["text"] for b in result["content"] if b["type"] == "text")


def engine_for(
    home: Path,
    environ: Mapping[str, str],
    clock: Callable[[], float] = time.time,
    **kwargs: Any,
) -> Engine:
    """An engine on the home's key pool, both given the settings ``environ`` makes, as a
    face builds them (the pool is ``engine.keypool``)."""
    from sidecar.engine import Engine
    from sidecar.rotation.keypool import KeyPool
    from sidecar.settings import Settings
    from sidecar.store import Store

    settings = Settings.load(home, environ)
    return Engine(KeyPool(Store(home), settings.env, clock), settings, **kwargs)
