"""What a team's state is called in Redis: key names, salted credential hashes, entries.

Unlike :mod:`sidecar.team._sync` (the connection) this is pure naming. A credential
is known in Redis only by an HMAC of its secret under a salt kept in the namespace:
the same key added on two machines meets under one name, and nothing stored there
(no secret, no fingerprint, no unsalted hash) lets a reader recover or recognise it.
What an entry means (a cooldown, a window) is the rotation package's business
(:mod:`sidecar.rotation.remote`); here it is a document with an order and an end.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import attrs

__all__ = ["Entry", "Names", "credential_hash"]

_SECTION = re.compile(r"[A-Za-z]{1,32}")


def credential_hash(salt: bytes, provider: str, secret: str) -> str:
    return hmac.new(salt, f"{provider}\0{secret}".encode(), hashlib.sha256).hexdigest()[:32]


@attrs.frozen
class Entry:
    """One shared piece of a credential's state, as the key pool hands it over."""

    provider: str
    section: str  # e.g. "cooldowns"; a word of letters
    scope: str | None  # a model scope for per-model entries, else None
    doc: dict[str, Any]
    order: float  # of two entries under one name, the greater is kept
    until: float  # epoch seconds: the entry expires then


class Names:
    """The Redis names of one namespace."""

    def __init__(self, namespace: str) -> None:
        self.prefix = f"llm-sidecar:{namespace}"
        self.salt = f"{self.prefix}:salt"
        self.channel = f"{self.prefix}:events"
        self.entries = f"{self.prefix}:*:*:*"  # a SCAN pattern over every entry

    def entry(self, section: str, provider: str, digest: str, scope: str | None = None) -> str:
        name = f"{self.prefix}:{section}:{provider}:{digest}"
        if scope is not None:  # hashed: a model's name may hold any character
            name += ":" + hashlib.sha256(scope.encode()).hexdigest()[:16]
        return name

    def of_credential(self, provider: str, digest: str) -> str:
        """A SCAN pattern over every entry of one credential."""
        return f"{self.prefix}:*:{provider}:{digest}*"

    def parse(self, key: str) -> tuple[str, str, str] | None:
        """(section, provider, digest) of an entry's name; None for any other key."""
        parts = key.split(":")
        if len(parts) not in (5, 6) or ":".join(parts[:2]) != self.prefix:
            return None
        if not _SECTION.fullmatch(parts[2]):
            return None
        return parts[2], parts[3], parts[4]
