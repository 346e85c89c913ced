"""The gateway token: what a local client must show to use the pool.

Random, created on first use, kept in ``gateway.json`` in the home (0600, written
atomically under the store's lock, like every other file there), so that
``llm-sidecar gateway env`` and a running gateway agree without a restart.
"""

from __future__ import annotations

import secrets

from sidecar.store import Store
from sidecar.store._jsonfile import read_json, write_json_atomic

__all__ = ["TOKEN_FILE", "TOKEN_PREFIX", "gateway_token"]

TOKEN_FILE = "gateway.json"
TOKEN_PREFIX = "llmsc-gw-"


def _valid(value: object) -> bool:
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX) and len(value) > 30


def gateway_token(store: Store) -> str:
    """The home's gateway token, created if there is none."""
    path = store.home / TOKEN_FILE
    if store.home.is_dir():
        doc = read_json(path)
        if doc is not None and _valid(doc.get("token")):
            return str(doc["token"])
    # Re-read under the lock: two processes starting at once must agree on one token.
    with store._locked():
        doc = read_json(path)
        if doc is not None and _valid(doc.get("token")):
            return str(doc["token"])
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        write_json_atomic(path, {"token": token})  # mkstemp: 0600 from the start
        return token
