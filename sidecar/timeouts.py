"""How long the sidecar waits for a provider: connect, read, and the whole answer.

Three environment variables (read from the process environment or the home's
``.env``, whichever the caller passes), in seconds:

* ``LLM_SIDECAR_CONNECT_TIMEOUT`` (default 10): to open a connection.
* ``LLM_SIDECAR_READ_TIMEOUT`` (default 120): the longest silence between two
  bytes of an answer (a stall before the first byte or between events).
* ``LLM_SIDECAR_TOTAL_TIMEOUT`` (default 600): the longest one attempt may last
  from the request to the last event, however steadily it trickles.

A value that is not a finite positive number, or is above :data:`MAXIMUM`,
falls back to the default with a warning: a typo must never mean "wait
forever". :meth:`Timeouts.httpx` gives the per-operation part as an
``httpx.Timeout``; ``total`` is for ``asyncio.timeout`` around an attempt,
since httpx has no whole-response deadline.

Importing this module does not import httpx.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import httpx

__all__ = [
    "CONNECT_ENV",
    "DEFAULTS",
    "MAXIMUM",
    "READ_ENV",
    "TOTAL_ENV",
    "Timeouts",
    "from_env",
]

log = logging.getLogger(__name__)

# Told (variable, message) about a bad value instead of the warning: see sidecar.settings.
Report = Callable[[str, str], None]

CONNECT_ENV = "LLM_SIDECAR_CONNECT_TIMEOUT"
READ_ENV = "LLM_SIDECAR_READ_TIMEOUT"
TOTAL_ENV = "LLM_SIDECAR_TOTAL_TIMEOUT"

MAXIMUM = 24 * 3600.0  # a day: anything longer is a mistake, not a wish
WRITE = 30.0  # sending the request body (large prompts over a slow uplink)
POOL = 10.0  # waiting for a free connection in the client's pool


def _valid(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 < value <= MAXIMUM
    )


@attrs.frozen
class Timeouts:
    """Seconds; every field finite and positive."""

    connect: float = 10.0
    read: float = 120.0
    total: float = 600.0
    write: float = WRITE
    pool: float = POOL

    def __attrs_post_init__(self) -> None:
        for field in attrs.fields(Timeouts):
            value = getattr(self, field.name)
            if not _valid(value):
                raise ValueError(f"{field.name} timeout must be in (0, {MAXIMUM:g}] s: {value!r}")

    def httpx_kwargs(self) -> dict[str, float]:
        """Keyword arguments of ``httpx.Timeout``."""
        return {"connect": self.connect, "read": self.read, "write": self.write, "pool": self.pool}

    def httpx(self) -> httpx.Timeout:
        import httpx

        return httpx.Timeout(**self.httpx_kwargs())


DEFAULTS = Timeouts()


def _read(env: Mapping[str, str], name: str, default: float, report: Report | None) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value: Any = float(raw.strip())
    except ValueError:
        value = None
    if not _valid(value):
        # The raw value is shown shortened and repr'd: it is the user's typo, not a secret,
        # but a pasted key in the wrong variable must not end up whole in a log.
        shown = raw.strip()
        shown = shown if len(shown) <= 12 else shown[:8] + "…"
        text = f"{name}={shown!r} is not a number of seconds in (0, {MAXIMUM:g}]"
        if report is None:
            log.warning("%s: using %g", text, default)
        else:
            report(name, text)  # the caller's policy (sidecar.settings) decides
        return default
    return float(value)


def from_env(environ: Mapping[str, str] | None = None, report: Report | None = None) -> Timeouts:
    """The timeouts the environment asks for (``os.environ`` when None)."""
    env = os.environ if environ is None else environ
    return Timeouts(
        connect=_read(env, CONNECT_ENV, DEFAULTS.connect, report),
        read=_read(env, READ_ENV, DEFAULTS.read, report),
        total=_read(env, TOTAL_ENV, DEFAULTS.total, report),
    )
