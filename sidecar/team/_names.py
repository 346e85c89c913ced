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

__all__ = ["POSITION", "USAGE", "Counts", "Entry", "Names", "credential_hash", "pool_hash"]

_SECTION = re.compile(r"[A-Za-z]{1,32}")
# The section of a credential's usage counters: a hash of counts every machine adds to
# (HINCRBY), not an entry of which the greater order wins; a key reset keeps it.
USAGE = "usage"
# The section of a pool's position (which key the team is on): named by the pool's
# hash, not a credential's (see TeamSync.position).
POSITION = "position"


def credential_hash(salt: bytes, provider: str, secret: str) -> str:
    return hmac.new(salt, f"{provider}\0{secret}".encode(), hashlib.sha256).hexdigest()[:32]


def pool_hash(salt: bytes, provider: str, digests: list[str]) -> str | None:
    """A pool's name from its credentials' hashes: the same keys on two machines meet
    under one, whatever their order; None for fewer than two (no position to share)."""
    if len(digests) < 2:
        return None
    return credential_hash(salt, provider, "\0".join(sorted(digests)))


@attrs.frozen
class Entry:
    """One shared piece of a credential's state, as the key pool hands it over."""

    provider: str
    section: str  # e.g. "cooldowns"; a word of letters
    scope: str | None  # a model scope for per-model entries, else None
    doc: dict[str, Any]
    order: float  # of two entries under one name, the greater is kept
    until: float  # epoch seconds: the entry expires then


@attrs.frozen
class Counts:
    """A credential's usage as the team counted it: every machine's requests added up."""

    requests: int = 0
    failures: int = 0
    last_used: float | None = None

    @classmethod
    def from_row(cls, row: object) -> Counts | None:
        """(requests, failures, lastUsed) as Redis holds them; None for anything else."""
        if not isinstance(row, list | tuple) or len(row) != 3:
            return None
        try:
            requests, failures = (int(v) if v else 0 for v in row[:2])
            last = float(row[2]) if row[2] else None
        except (TypeError, ValueError):
            return None
        return cls(requests, failures, last)

    def newer_than(self, other: Counts | None) -> bool:
        # Counts only grow: of two reports of one counter, the one with more is later.
        return other is None or self.requests + self.failures >= other.requests + other.failures


class Names:
    """The Redis names of one namespace."""

    def __init__(self, namespace: str) -> None:
        self.prefix = f"llm-sidecar:{namespace}"
        self.salt = f"{self.prefix}:salt"
        self.channel = f"{self.prefix}:events"
        self.entries = f"{self.prefix}:*:*:*"  # a SCAN pattern over every entry
        self.usages = f"{self.prefix}:{USAGE}:*"  # …and over every usage counter

    def batch(self, token: str) -> str:
        """The mark of one batch of counts applied (a retry of it then adds nothing)."""
        return f"{self.prefix}:batch:{token}"

    def entry(self, section: str, provider: str, digest: str, scope: str | None = None) -> str:
        name = f"{self.prefix}:{section}:{provider}:{digest}"
        if scope is not None:  # hashed: a model's name may hold any character
            name += ":" + hashlib.sha256(scope.encode()).hexdigest()[:16]
        return name

    def of_credential(self, provider: str, digest: str) -> str:
        """A SCAN pattern over every entry of one credential (its usage too: see shared)."""
        return f"{self.prefix}:*:{provider}:{digest}*"

    def usage(self, provider: str, digest: str) -> str:
        return self.entry(USAGE, provider, digest)

    def shared(self, key: str | bytes) -> bool:
        """Whether ``key`` is an entry a reset forgets: any but the usage counters."""
        text = key.decode() if isinstance(key, bytes) else key
        parsed = self.parse(text)
        return parsed is not None and parsed[0] != USAGE

    def parse(self, key: str) -> tuple[str, str, str] | None:
        """(section, provider, digest) of an entry's name; None for any other key."""
        parts = key.split(":")
        if len(parts) not in (5, 6) or ":".join(parts[:2]) != self.prefix:
            return None
        if not _SECTION.fullmatch(parts[2]):
            return None
        return parts[2], parts[3], parts[4]
