"""Turning secrets into something safe to show.

A secret never leaves the process except in the HTTP request it was made for.
Everywhere else (logs, errors, status, the CLI) shows its fingerprint: the
vendor prefix and the last four characters, e.g. ``sk-ant-…a1b2``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

__all__ = ["MIN_RUN", "fingerprint", "redact", "secret_hash"]

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


# A run of this many characters of a secret (outside its public vendor prefix) is
# treated as the secret: a provider's message cut at its display length, or a body
# cut at the read limit, can leave a key's first or last part alone in the text.
MIN_RUN = 8
# Anchors: the secret's body cut into pieces of this length at this stride. Any run of
# MIN_RUN characters holds one whole anchor (ANCHOR + ANCHOR - 1 <= MIN_RUN), so finding
# the anchors (str.find, C speed) and growing each hit finds every run.
_ANCHOR = 4


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret, and every run of ``MIN_RUN`` or more characters of one,
    replaced by the secret's fingerprint.

    Whole secrets go first (longest first, so a secret that contains another is replaced
    whole), then the pieces. A secret's vendor prefix (``sk-ant-api03-``) is public and
    shared by every key of its kind: only its characters after the prefix count, so a
    fingerprint or another key's prefix is never mistaken for a piece.
    """
    candidates = sorted({s for s in secrets if s and len(s) >= MIN_RUN}, key=len, reverse=True)
    for secret in candidates:
        if secret in text:
            text = text.replace(secret, fingerprint(secret))
    for secret in candidates:
        text = _redact_runs(text, secret)
    return text


def _redact_runs(text: str, secret: str) -> str:
    match = _PREFIX.match(secret)
    start = match.end() if match else 0
    body = secret[start:]
    if len(body) < MIN_RUN:
        return text
    spans: list[tuple[int, int]] = []
    for offset in range(0, len(body) - _ANCHOR + 1, _ANCHOR):
        anchor = body[offset : offset + _ANCHOR]
        hit = text.find(anchor)
        while hit != -1:
            # Grow the hit in both directions while text and body agree.
            left, right = hit, hit + _ANCHOR
            b_left, b_right = offset, offset + _ANCHOR
            while left > 0 and b_left > 0 and text[left - 1] == body[b_left - 1]:
                left, b_left = left - 1, b_left - 1
            while right < len(text) and b_right < len(body) and text[right] == body[b_right]:
                right, b_right = right + 1, b_right + 1
            if right - left >= MIN_RUN:
                spans.append((left, right))
            hit = text.find(anchor, hit + 1)
    if not spans:
        return text
    # The prefix is left in the text as it stood: a piece that follows it then reads as
    # the fingerprint, ``sk-ant-api03-…a1b2``.
    label = fingerprint(secret).removeprefix(secret[:start])
    out: list[str] = []
    position = 0
    for left, right in sorted(spans):
        if right <= position:
            continue  # inside a span already replaced
        out.append(text[position : max(left, position)])
        if left >= position:
            out.append(label)
        position = right
    out.append(text[position:])
    return "".join(out)
