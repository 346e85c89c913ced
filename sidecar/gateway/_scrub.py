"""Keeping a key the provider quotes back out of the bytes the client gets.

A provider may echo the key it was sent ("Incorrect API key provided: sk-…") in an
error body, an error event mid-stream, or a host's own event shape; its bytes come cut
into HTTP chunks anywhere, so the chunk holding the key need not say "error", and a key
may straddle two chunks. So every chunk is looked at, and only whole lines go out: a
key never spans a line, and an SSE client cannot use half a line before its end comes
anyway (the provider's events end with a newline, so nothing waits in the usual case).

Looking is cheap: a run of :data:`~sidecar.fingerprints.MIN_RUN` characters of the key
always holds one of its 4-character anchors, so bytes holding none of them go out as
they are, and only a hit pays for :func:`~sidecar.fingerprints.redact`. Bytes are never
decoded unless a piece of the key is there. The search is the gateway's cost per byte
of every answer, so the anchors are picked for it (see :func:`_anchors`): on an
SSE stream it measured 1–4 ns a byte, against 17–68 for a search for every anchor.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Iterable

from sidecar.fingerprints import MIN_RUN, fingerprint, redact

__all__ = ["Scrubber"]

_ANCHOR = 4
# Every run of MIN_RUN characters of the key must hold a whole anchor: anchors of 4
# characters may start at most 5 apart (5 + 4 <= MIN_RUN + 1).
_GAP = MIN_RUN + 1 - _ANCHOR
# Anchors starting with a capital letter go into one alternation: the regex engine skips
# at C speed to a position whose character can start one, and capitals are rare in
# JSON and prose. Any other anchor gets a search of its own (a literal: fast anyway).
_RARE_FIRST = frozenset(string.ascii_uppercase)


def _anchors(body: str) -> list[str]:
    """Anchors no more than :data:`_GAP` apart, each chosen to start with a rare
    character where the key allows."""
    last_start = len(body) - _ANCHOR
    chosen: list[str] = []
    at = -1
    while at < last_start - _GAP + 1 or not chosen:
        window = range(at + 1, min(at + _GAP, last_start) + 1)
        at = min(window, key=lambda i: (body[i] not in _RARE_FIRST, -i))
        chosen.append(body[at : at + _ANCHOR])
    return chosen


def _searches(pieces: Iterable[str]) -> list[re.Pattern[bytes]]:
    pieces = set(pieces)
    rare = sorted(p for p in pieces if p[0] in _RARE_FIRST)
    common = sorted(p for p in pieces if p[0] not in _RARE_FIRST)
    alternatives = ["|".join(map(re.escape, rare))] if rare else []
    return [re.compile(p.encode("utf-8", "surrogateescape")) for p in alternatives] + [
        re.compile(re.escape(p).encode("utf-8", "surrogateescape")) for p in common
    ]


@functools.lru_cache(maxsize=64)
def _searches_for(
    secret: str, body: str
) -> tuple[list[re.Pattern[bytes]], list[re.Pattern[bytes]]]:
    """(the anchors' searches, the runs' searches) of a key: compiled once per key, not
    per answer (a hundred patterns; the regex module's own cache would churn)."""
    if len(body) < MIN_RUN:
        # Too short for a run: only the whole key counts (redact() replaces it).
        whole = _searches([secret] if len(secret) >= MIN_RUN else [])
        return whole, whole
    # An anchor is 4 characters and may be in ordinary text: before paying for
    # redact(), a second look for a whole run (slower, so only on a hit).
    runs = (body[i : i + MIN_RUN] for i in range(len(body) - MIN_RUN + 1))
    return _searches(_anchors(body)), _searches(runs)


def _found(searches: list[re.Pattern[bytes]], data: bytes) -> bool:
    return any(search.search(data) is not None for search in searches)


class Scrubber:
    """One answer's bytes, with ``secret`` (and any run of it) replaced by its fingerprint.

    ``max_carry`` bounds the unfinished line held back (a line that never ends, say):
    past it the bytes go out as they are scrubbed, and only a piece shorter than a run
    could cross that cut.
    """

    def __init__(self, secret: str, max_carry: int = 64 * 1024) -> None:
        self.secret = secret
        self.max_carry = max_carry
        # The vendor prefix ("sk-ant-api03-") is public and in every key of its kind:
        # anchors from it would match every other key's prefix for nothing.
        prefix = fingerprint(secret).partition("…")[0]
        body = secret[len(prefix) :] if prefix and secret.startswith(prefix) else secret
        self._first, self._then = _searches_for(secret, body)
        self._carry = bytearray()

    def clean(self, data: bytes) -> bytes:
        """``data`` scrubbed as a whole (a body read whole, or whole lines)."""
        if not _found(self._first, data) or not _found(self._then, data):
            return data
        text = data.decode("utf-8", "surrogateescape")  # bytes that are no UTF-8 stay
        scrubbed = redact(text, [self.secret])
        return data if scrubbed == text else scrubbed.encode("utf-8", "surrogateescape")

    def feed(self, chunk: bytes) -> bytes:
        """What of the stream can go out now: up to its last line end, scrubbed."""
        end = chunk.rfind(b"\n") + 1
        if end == 0:
            if len(self._carry) + len(chunk) <= self.max_carry:
                self._carry += chunk  # a bytearray: a long line grows in place
                return b""
            end = len(chunk)
        ready = bytes(self._carry) + chunk[:end] if self._carry else chunk[:end]
        self._carry[:] = chunk[end:]
        return self.clean(ready)

    def flush(self) -> bytes:
        """The unfinished last line, at the end of the stream."""
        data = bytes(self._carry)
        self._carry.clear()
        return self.clean(data) if data else b""
