"""When a rate-limited credential may be used again, as the provider's answer says.

Pure and clock-free like :mod:`sidecar.rotation.classify` (which re-exports :func:`retry_at`):
headers and ``now`` in, epoch seconds out. No I/O, nothing imported that start-up
would pay for.

Providers report their limits per *window*: OpenAI-compatible hosts send
``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``, Anthropic
``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}``
and, for subscriptions, ``anthropic-ratelimit-unified-{5h,7d,…}-{status,reset}``. Every
window is reported on every answer, the ones with headroom too, so the rules are:

1. ``retry-after`` (and ``retry-after-ms``) is the provider's own statement of when
   *this* request would be admitted, and it wins alone. A window's ``reset`` is when it
   is *fully* replenished (Anthropic's token buckets refill continuously), often far
   later: taking it parked usable keys for minutes (found by the goodput benchmark).
2. Without it, a window that is exhausted (``remaining`` 0, unified ``status:
   rejected``) counts: the credential is usable only once all of them have reset, so
   the latest one wins.
3. Otherwise the shortest reset among windows whose state the provider did not say.
4. A window with headroom (``x-ratelimit-remaining-tokens: 149984``, ``status:
   allowed``) never sets the cooldown: its 6-minute token reset is not why the request
   was refused, and taking it would park a key that is usable again in a second.

Absolute reset times (RFC 3339, Unix seconds, an HTTP-date ``retry-after``) are on the
provider's clock. When the answer carries its own ``Date``, they are read relative to
it, so a local clock that is off neither zeroes a cooldown (clock ahead: the reset looks
past) nor stretches it (clock behind). Durations (``6m0s``, ``retry-after: 30``) need no
clock.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime

__all__ = [
    "HeaderReader",
    "duration_seconds",
    "http_date",
    "number",
    "retry_at",
    "unix_or_rfc3339",
]

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
# Go's time.Duration.String() and what OpenAI-compatible hosts send:
# "1s", "6m0s", "250ms", "1h2m3.5s". "ms" must be tried before "m" and "s".
_DURATION_PART = r"(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h)"
_DURATION = re.compile(rf"(?:{_DURATION_PART})+")
_DURATION_PARTS = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # micro sign
    "μs": 1e-6,  # Greek mu; Go accepts both
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}

# anthropic-ratelimit-tokens-reset, anthropic-ratelimit-unified-5h-status,
# anthropic-ratelimit-unified-reset (the window is then "unified").
_ANTHROPIC_FIELD = re.compile(
    r"anthropic-ratelimit-(?P<window>.+)-(?P<field>reset|remaining|status)"
)
# x-ratelimit-reset-requests, x-ratelimit-remaining-tokens-usage-based.
_X_FIELD = re.compile(r"x-ratelimit-(?P<field>reset|remaining)-(?P<window>.+)")
# Unified (subscription) windows say whether they refused us instead of a count.
_EXHAUSTED_STATUSES = frozenset({"rejected"})
_HEADROOM_STATUSES = frozenset({"allowed", "allowed_warning"})


def _finite(value: float) -> float | None:
    # float() turns "1e999" into inf; an infinite retry time would freeze a key.
    return value if math.isfinite(value) else None


def number(value: str) -> float | None:
    # A strict grammar rather than float(): float() also takes "nan", "inf",
    # "1_0" and exponents, none of which a provider means.
    text = value.strip()
    if not _NUMBER.fullmatch(text):
        return None
    return _finite(float(text))


def duration_seconds(value: str) -> float | None:
    """Seconds in a Go duration (``6m0s``, ``250ms``; also Google's ``20.5s``) or a bare
    number; None if ``value`` is neither."""
    text = value.strip()
    bare = number(text)
    if bare is not None:
        return bare
    if not _DURATION.fullmatch(text):
        return None
    total = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PARTS.findall(text))
    return _finite(total)


def _rfc3339(value: str) -> float | None:
    # fromisoformat (3.11) reads "Z", offsets and any number of fractional
    # digits; RFC 3339 also allows lower-case "t" and "z".
    text = value.strip().upper()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        # No offset: the providers speak UTC.
        parsed = parsed.replace(tzinfo=UTC)
    return _finite(parsed.timestamp())


# Memoized: every answer repeats the same few values (its Date, the resets of a window
# within the same second), and the key pool reads every answer (headroom).
@functools.lru_cache(maxsize=256)
def _http_date(value: str) -> float | None:
    # Imported here: email.utils costs ~20 ms to import, and an HTTP date is only
    # read on the error path; start-up should not pay for it.
    import email.utils

    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return _finite(parsed.timestamp())
    except (OverflowError, ValueError, OSError):
        return None


@functools.lru_cache(maxsize=256)
def unix_or_rfc3339(value: str) -> float | None:
    # Unified headers carry Unix seconds and the others RFC 3339, but a value
    # in the other form is unambiguous, so read either rather than drop it.
    count = number(value)
    return count if count is not None else _rfc3339(value)


class _Window:
    """One limit window: when it resets (local epoch seconds) and whether it is spent
    (None: the provider did not say)."""

    __slots__ = ("exhausted", "reset")

    def __init__(self) -> None:
        self.reset: float | None = None
        self.exhausted: bool | None = None


class HeaderReader:
    """The headers of one answer, with the provider's clock mapped onto ours."""

    def __init__(self, headers: Mapping[str, str], now: float) -> None:
        self.headers = {str(k).strip().lower(): str(v) for k, v in headers.items()}
        self.now = now
        provider_now = _http_date(self.headers["date"]) if "date" in self.headers else None
        # Added to a time read on the provider's clock to put it on ours. Date has whole
        # seconds only, so a reset may come out up to a second late: the safe side.
        self.offset = 0.0 if provider_now is None else now - provider_now

    def absolute(self, when: float | None) -> float | None:
        return None if when is None else when + self.offset

    def relative(self, seconds: float | None) -> float | None:
        return None if seconds is None else self.now + seconds

    def explicit(self) -> list[float]:
        """The times ``retry-after`` and ``retry-after-ms`` name."""
        out: list[float] = []
        if (value := self.headers.get("retry-after")) is not None:
            seconds = number(value)
            when = self.relative(seconds) if seconds is not None else None
            when = when if when is not None else self.absolute(_http_date(value))
            if when is not None:
                out.append(when)
        if (value := self.headers.get("retry-after-ms")) is not None:
            ms = number(value)
            if ms is not None:
                out.append(self.now + ms / 1000.0)
        return out

    def windows(self) -> list[_Window]:
        windows: dict[str, _Window] = {}
        for name, value in self.headers.items():
            if match := _ANTHROPIC_FIELD.fullmatch(name):
                window = windows.setdefault("anthropic:" + match["window"], _Window())
                if match["field"] == "reset":
                    window.reset = self.absolute(unix_or_rfc3339(value))
                elif match["field"] == "status":
                    status = value.strip().lower()
                    if status in _EXHAUSTED_STATUSES:
                        window.exhausted = True
                    elif status in _HEADROOM_STATUSES:
                        window.exhausted = False
                else:
                    window.exhausted = _spent(value)
            elif match := _X_FIELD.fullmatch(name):
                window = windows.setdefault("x:" + match["window"], _Window())
                if match["field"] == "reset":
                    window.reset = self.relative(duration_seconds(value))
                else:
                    window.exhausted = _spent(value)
        return list(windows.values())


def _spent(remaining: str) -> bool | None:
    count = number(remaining)
    return None if count is None else count <= 0


def retry_at(headers: Mapping[str, str], now: float) -> float | None:
    """When the provider says the credential may be used again, as epoch seconds.

    Reads ``retry-after`` (seconds or HTTP date), ``retry-after-ms``,
    ``anthropic-ratelimit-*`` (resets in RFC 3339; unified ones in Unix seconds) and
    ``x-ratelimit-*`` (resets as Go durations or bare seconds), by the rules in the
    module's docstring. Unparseable values are skipped: a malformed header must never
    turn a rate limit into a crash. A time in the past is clamped to ``now``. None when
    no header gives a time.
    """
    reader = HeaderReader(headers, now)
    explicit = reader.explicit()
    if explicit:
        return max(max(explicit), now)
    windows = reader.windows()
    binding = [w.reset for w in windows if w.exhausted and w.reset is not None]
    if binding:
        return max(max(binding), now)
    unknown = [w.reset for w in windows if w.exhausted is None and w.reset is not None]
    if unknown:
        return max(min(unknown), now)
    return None


def http_date(value: str) -> float | None:
    """Epoch seconds of an HTTP date (a ``Date`` header); None if it is not one."""
    return _http_date(value)
