"""The gateway token: what a local client must show to use the pool.

Random, created on first use, kept in ``gateway.json`` in the home (0600, written
atomically under the store's lock, like every other file there), so that
``llm-sidecar gateway env`` and a running gateway agree without a restart.
"""

from __future__ import annotations

import secrets
from typing import Any

from sidecar.sources import GATEWAY_TOKEN_PREFIX as TOKEN_PREFIX
from sidecar.store import Store

__all__ = ["TOKEN_FILE", "TOKEN_PREFIX", "gateway_token"]

TOKEN_FILE = "gateway.json"


def _valid(doc: dict[str, Any]) -> bool:
    value = doc.get("token")
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX) and len(value) > 30


def gateway_token(store: Store) -> str:
    """The home's gateway token, created if there is none (or the file is unusable)."""
    doc = store.read_or_create(
        TOKEN_FILE, _valid, lambda: {"token": TOKEN_PREFIX + secrets.token_urlsafe(32)}
    )
    return str(doc["token"])
