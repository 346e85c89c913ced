"""Keeping a key the provider quotes back out of the bytes the client gets.

A provider may echo the key it was sent ("Incorrect API key provided: sk-…") in an
error body, an error event mid-stream, or a host's own event shape; its bytes come cut
into HTTP chunks anywhere, so the chunk holding the key need not say "error", and a key
may straddle two chunks. So every chunk is looked at, and only whole lines go out: a
key never spans a line, and an SSE client cannot use half a line before its end comes
anyway (the provider's events end with a newline, so nothing waits in the usual case).

Looking is cheap: a run of :data:`~sidecar.fingerprints.MIN_RUN` characters of the key
always holds one of its 4-character anchors, so bytes holding none of them go out as
they are, and only a hit pays for :func:`~sidecar.fingerprints.redact`.
"""

from __future__ import annotations

from sidecar.fingerprints import fingerprint, redact

__all__ = ["Scrubber"]

_ANCHOR = 4  # MIN_RUN (8) >= 2 * _ANCHOR: any run of the key holds one whole anchor


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
        self._anchors = tuple(
            {body[i : i + _ANCHOR].encode() for i in range(0, len(body) - _ANCHOR + 1, _ANCHOR)}
        )
        self._carry = bytearray()

    def clean(self, data: bytes) -> bytes:
        """``data`` scrubbed as a whole (a body read whole, or whole lines)."""
        if not any(anchor in data for anchor in self._anchors):
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
