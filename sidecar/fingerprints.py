"""Turning secrets into something safe to show.

A secret never leaves the process except in the HTTP request it was made for.
Everywhere else (logs, errors, status, the CLI) shows its fingerprint: the
vendor prefix and the last four characters, e.g. ``sk-ant-…a1b2``.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Iterator
from typing import NamedTuple

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


@functools.lru_cache(maxsize=8192)  # rotation asks for every pooled key's, many times
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
    candidates = tuple(
        sorted({s for s in secrets if s and len(s) >= MIN_RUN}, key=len, reverse=True)
    )
    for secret in candidates:
        if secret in text:
            text = text.replace(secret, fingerprint(secret))
    return _redact_runs(text, candidates) if candidates else text


class _Ref(NamedTuple):
    body: str  # the secret after its public prefix
    offset: int  # where the anchor sits in the body
    label: str  # what a piece becomes


@functools.lru_cache(maxsize=32)
def _anchor_index(secrets: tuple[str, ...]) -> dict[str, tuple[_Ref, ...]]:
    """Every anchor of the secrets' bodies → where it comes from. Cached: the log filter
    asks with the same pool's secrets for every record."""
    index: dict[str, list[_Ref]] = {}
    for secret in secrets:
        match = _PREFIX.match(secret)
        start = match.end() if match else 0
        body = secret[start:]
        # The prefix is left in the text as it stood: a piece that follows it then reads
        # as the fingerprint, ``sk-ant-api03-…a1b2``.
        label = fingerprint(secret).removeprefix(secret[:start])
        if len(body) < MIN_RUN:
            continue
        for offset in range(0, len(body) - _ANCHOR + 1, _ANCHOR):
            index.setdefault(body[offset : offset + _ANCHOR], []).append(_Ref(body, offset, label))
    return {anchor: tuple(refs) for anchor, refs in index.items()}


# Where a piece of a secret can be: a run of 8 or more characters with no whitespace,
# quote, bracket or separator of JSON, Python reprs or log lines in it. Keys and tokens
# are made of letters, digits and ``-_.~+/=``; skipping the rest keeps a log line of
# words or punctuation nearly free.
_CANDIDATE = re.compile(rf"""[^\s"'`\\,:;{{}}\[\]()<>]{{{MIN_RUN},}}""")


def _hits(text: str, index: dict[str, tuple[_Ref, ...]]) -> Iterator[tuple[int, _Ref]]:
    """Where in ``text`` an anchor occurs, and whose."""
    for region in _CANDIDATE.finditer(text):
        start, end = region.span()
        if end - start < 8 * len(index):
            # A short run: one dictionary lookup per position beats a find per anchor.
            for position in range(start, end - _ANCHOR + 1):
                for ref in index.get(text[position : position + _ANCHOR], ()):
                    yield position, ref
            continue
        for anchor, refs in index.items():
            hit = text.find(anchor, start, end)
            while hit != -1:
                for ref in refs:
                    yield hit, ref
                hit = text.find(anchor, hit + 1, end)


def _redact_runs(text: str, secrets: tuple[str, ...]) -> str:
    spans: list[tuple[int, int, str]] = []
    for hit, (body, offset, label) in _hits(text, _anchor_index(secrets)):
        # Grow the hit in both directions while text and body agree.
        left, right = hit, hit + _ANCHOR
        b_left, b_right = offset, offset + _ANCHOR
        while left > 0 and b_left > 0 and text[left - 1] == body[b_left - 1]:
            left, b_left = left - 1, b_left - 1
        while right < len(text) and b_right < len(body) and text[right] == body[b_right]:
            right, b_right = right + 1, b_right + 1
        if right - left >= MIN_RUN:
            spans.append((left, right, label))
    if not spans:
        return text
    out: list[str] = []
    position = 0
    for left, right, label in sorted(spans):
        if right <= position:
            continue  # inside a span already replaced
        out.append(text[position : max(left, position)])
        if left >= position:
            out.append(label)
        position = right
    out.append(text[position:])
    return "".join(out)
