"""Turning secrets into something safe to show.

A secret never leaves the process except in the HTTP request it was made for.
Everywhere else (logs, errors, status, the CLI) shows its fingerprint: the
vendor prefix and the last four characters, e.g. ``sk-ant-…a1b2``.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["fingerprint", "redact", "secret_hash"]

# Vendor prefixes are not secret and tell the user which kind of key it is:
# "sk-ant-api03-", "sk-ant-oat01-", "sk-proj-", "gsk_", "xai-".
_PREFIX = re.compile(r"^(?:[A-Za-z]{1,4}[-_])(?:[A-Za-z]{2,4}[-_])?(?:[a-z]{2,4}\d\d[-_])?")


def fingerprint(secret: str) -> str:
    """A short, non-reversible label for a secret: ``sk-ant-…a1b2``."""
    if len(secret) < 16:
        # Four characters of a short secret is too much of it.
        return "…" + secret[-2:] if len(secret) >= 8 else "…"
    match = _PREFIX.match(secret)
    prefix = match.group(0) if match else ""
    return f"{prefix}…{secret[-4:]}"


def secret_hash(secret: str) -> str:
    """A stable identifier for a secret, for state files: 16 hex chars of SHA-256."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def redact(text: str, secrets: list[str] | tuple[str, ...]) -> str:
    """Replace every occurrence of the given secrets in ``text`` by their fingerprints."""
    for secret in secrets:
        if secret and len(secret) >= 8 and secret in text:
            text = text.replace(secret, fingerprint(secret))
    return text
