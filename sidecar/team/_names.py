"""What a team's state is called in Redis: key names and the salted credential hashes.

Unlike :mod:`sidecar.team._sync` (the connection) this is pure naming. A credential
is known in Redis only by an HMAC of its secret under a salt kept in the namespace:
the same key added on two machines meets under one name, and nothing stored there
(no secret, no fingerprint, no unsalted hash) lets a reader recover or recognise it.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["SECTIONS", "Names", "credential_hash"]

# The parts of a provider's rotation state a team shares; the rest stays per machine.
SECTIONS = ("cooldowns", "rejected")


def credential_hash(salt: bytes, provider: str, secret: str) -> str:
    return hmac.new(salt, f"{provider}\0{secret}".encode(), hashlib.sha256).hexdigest()[:32]


class Names:
    """The Redis names of one namespace."""

    def __init__(self, namespace: str) -> None:
        self.prefix = f"llm-sidecar:{namespace}"
        self.salt = f"{self.prefix}:salt"
        self.channel = f"{self.prefix}:events"

    def entry(self, section: str, provider: str, digest: str) -> str:
        return f"{self.prefix}:{section}:{provider}:{digest}"

    def pattern(self, section: str) -> str:
        return f"{self.prefix}:{section}:*"

    def parse(self, key: str) -> tuple[str, str, str] | None:
        """(section, provider, digest) of an entry's name; None for any other key."""
        parts = key.split(":")
        if len(parts) != 5 or ":".join(parts[:2]) != self.prefix or parts[2] not in SECTIONS:
            return None
        return parts[2], parts[3], parts[4]
