"""How much of a provider's answer the sidecar will hold: one SSE event, one response.

Two environment variables (read from the process environment or the home's ``.env``,
whichever the caller passes), in bytes, with an optional ``K``, ``M`` or ``G`` suffix
(KiB, MiB, GiB):

* ``LLM_SIDECAR_MAX_EVENT_BYTES`` (default 16M): one SSE event, from its first line to
  the blank line that ends it, and so any single line. Real events are a few hundred
  bytes; a whole tool call in one chunk a few hundred KiB.
* ``LLM_SIDECAR_MAX_RESPONSE_BYTES`` (default 256M): one response, counted after
  decompression. The longest real answers (128k output tokens) are a few tens of MiB
  of SSE.

A provider past either limit (an endless line, a gzip bomb) fails the attempt: it is
not replayed and no key is cooled down (it is the host's doing, not the key's).
Decompression runs in small bounded steps, so memory stays near the event limit
whatever the compression ratio. A value that is not a whole number of bytes in
[64K, 16G] falls back to the default with a warning, like the timeouts.

Importing this module does not import httpx.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping

import attrs

__all__ = ["DEFAULTS", "EVENT_ENV", "RESPONSE_ENV", "BodyLimits", "from_env"]

log = logging.getLogger(__name__)

# Told (variable, message) about a bad value instead of the warning: see sidecar.settings.
Report = Callable[[str, str], None]

EVENT_ENV = "LLM_SIDECAR_MAX_EVENT_BYTES"
RESPONSE_ENV = "LLM_SIDECAR_MAX_RESPONSE_BYTES"

_MINIMUM = 64 * 1024  # below this a real answer's event could trip it
_MAXIMUM = 16 * 1024**3  # above this "a limit" no longer protects anything
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
_SIZE = re.compile(r"(\d+)\s*([KMG]?)(?:I?B)?", re.IGNORECASE)


def _valid(value: int) -> bool:
    return _MINIMUM <= value <= _MAXIMUM


@attrs.frozen
class BodyLimits:
    """Bytes; see the module's docstring."""

    max_event: int = 16 * 1024**2
    max_response: int = 256 * 1024**2

    def __attrs_post_init__(self) -> None:
        for field in attrs.fields(BodyLimits):
            value = getattr(self, field.name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{field.name} must be a positive number of bytes: {value!r}")


DEFAULTS = BodyLimits()


def describe(size: int) -> str:
    """``16777216`` → ``16 MiB``, for error messages."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


def _read(env: Mapping[str, str], name: str, default: int, report: Report | None) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    match = _SIZE.fullmatch(raw.strip())
    value = int(match.group(1)) * _UNITS[match.group(2).upper()] if match else None
    if value is None or not _valid(value):
        # Shortened: a key pasted into the wrong variable must not land whole in a log.
        shown = raw.strip()
        shown = shown if len(shown) <= 12 else shown[:8] + "…"
        text = f"{name}={shown!r} is not a size in [64K, 16G] (bytes, or with K, M or G)"
        if report is None:
            log.warning("%s: using %s", text, describe(default))
        else:
            report(name, text)  # the caller's policy (sidecar.settings) decides
        return default
    return value


def from_env(environ: Mapping[str, str] | None = None, report: Report | None = None) -> BodyLimits:
    """The limits the environment asks for (``os.environ`` when None)."""
    env = os.environ if environ is None else environ
    return BodyLimits(
        max_event=_read(env, EVENT_ENV, DEFAULTS.max_event, report),
        max_response=_read(env, RESPONSE_ENV, DEFAULTS.max_response, report),
    )
