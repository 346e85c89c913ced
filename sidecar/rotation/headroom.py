"""How much of each rate-limit window a credential has left, read from any answer's headers.

Unlike :mod:`~sidecar.rotation.resets`, which reads a *refused* answer for when to try
again, this reads *every* answer (successes included) for the windows themselves:
limit, remaining, reset, and for subscriptions the unified utilisation. The key pool
keeps the latest per credential in the shared state, so that a key the provider says
is spent is skipped before it earns a 429, and the status bar can warn while there is
still time. Pure and clock-free: headers and ``now`` in, typed windows out.

Which scope a window (or a cooldown) applies to is :func:`model_scope`'s answer:
Anthropic's API-key limits are per model class, OpenAI-compatible hosts' per model, a
subscription's unified windows per account.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from sidecar.rotation.resets import duration_seconds, http_date, number, unix_or_rfc3339

__all__ = [
    "LOW_FRACTION",
    "Window",
    "blocked_until",
    "flags",
    "lowest_fraction",
    "model_scope",
    "read_windows",
    "windows_for",
]

LOW_FRACTION = 0.10  # below this share of a window left, the status bar warns
_TOKEN_SHARE = 0.05  # of a spent token bucket, refilled before a request is tried again

_ANTHROPIC = re.compile(
    r"anthropic-ratelimit-(?P<window>requests|tokens|input-tokens|output-tokens)-"
    r"(?P<field>limit|remaining|reset)"
)
# anthropic-ratelimit-unified-5h-utilization, -7d-status, -7d_sonnet-reset; and the
# overall anthropic-ratelimit-unified-status / -reset (window "unified").
_UNIFIED = re.compile(
    r"anthropic-ratelimit-unified(?:-(?P<window>[0-9a-z_]+))?-(?P<field>utilization|status|reset)"
)
_X = re.compile(r"x-ratelimit-(?P<field>limit|remaining|reset)-(?P<window>requests|tokens)")
_REJECTED = frozenset({"rejected"})
# Anthropic's limits apply per model class ("Opus", "Sonnet", "Haiku"), whatever the
# version: every claude-sonnet-* shares one.
_CLASSES = ("opus", "sonnet", "haiku")


@attrs.frozen
class Window:
    """One rate-limit window as the provider last reported it.

    ``account``: the window covers the whole credential (a subscription's unified
    windows); otherwise it covers ``model`` (the scope from :func:`model_scope`, set
    when the pool records it; None while only parsed). ``reset_at`` is epoch seconds on
    our clock. Unified windows report ``utilization`` (0..1) and ``status``, the others
    ``limit`` and ``remaining``. ``steady``: the window refills continuously (Anthropic's
    token buckets), so part of it is back well before its full reset.
    """

    name: str
    limit: float | None = None
    remaining: float | None = None
    reset_at: float | None = None
    utilization: float | None = None
    status: str | None = None
    account: bool = False
    model: str | None = None
    steady: bool = False
    seen_at: float = 0.0

    @property
    def fraction_left(self) -> float | None:
        """The share of the window left, 0..1; None when the provider gave no figures."""
        if self.utilization is not None:
            return max(0.0, 1.0 - self.utilization)
        if self.limit and self.remaining is not None:
            return max(0.0, min(1.0, self.remaining / self.limit))
        return None

    @property
    def spent(self) -> bool:
        """The provider says this window will refuse the next request."""
        if self.status in _REJECTED:
            return True
        if self.utilization is not None and self.utilization >= 1.0:
            return True
        return self.remaining is not None and self.remaining <= 0

    def usable_at(self) -> float:
        """When a spent window takes a request again (0.0: now)."""
        if not self.spent or self.reset_at is None:
            return 0.0
        if self.steady and self.limit and self.reset_at > self.seen_at:
            # A token bucket refills at an even pace, and ``reset`` is when it is full:
            # one request is back after 1/limit of that, enough tokens for a modest
            # request (a twentieth of the bucket) after a twentieth. Waiting for the full
            # reset parked usable keys for a minute (the goodput benchmark).
            share = 1 / self.limit if self.name == "requests" else _TOKEN_SHARE
            return self.seen_at + (self.reset_at - self.seen_at) * min(1.0, share)
        return self.reset_at

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "seenAt": self.seen_at}
        for key, value in (
            ("limit", self.limit),
            ("remaining", self.remaining),
            ("resetAt", self.reset_at),
            ("utilization", self.utilization),
            ("status", self.status),
            ("model", self.model),
        ):
            if value is not None:
                doc[key] = value
        if self.account:
            doc["account"] = True
        if self.steady:
            doc["steady"] = True
        return doc

    @classmethod
    def from_doc(cls, doc: Any) -> Window | None:
        if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
            return None

        def num(key: str) -> float | None:
            value = doc.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            return None

        status, model = doc.get("status"), doc.get("model")
        return cls(
            name=doc["name"],
            limit=num("limit"),
            remaining=num("remaining"),
            reset_at=num("resetAt"),
            utilization=num("utilization"),
            status=status if isinstance(status, str) else None,
            account=doc.get("account") is True,
            model=model if isinstance(model, str) else None,
            steady=doc.get("steady") is True,
            seen_at=num("seenAt") or 0.0,
        )


@functools.lru_cache(maxsize=512)  # every request asks; a handful of models in use
def model_scope(api: str, model: str | None) -> str | None:
    """What a per-model limit of ``model`` is shared with: Anthropic's model class
    (``sonnet`` for every claude-sonnet-*), else the model itself; None: unknown."""
    if not model:
        return None
    name = model.strip().lower()
    if api == "anthropic":
        for cls in _CLASSES:
            if cls in name:
                return cls
    return name


# What a header name means, (flavour, window, field) or None, by name: every answer
# repeats the same dozen names, and matching three patterns on each cost more than the
# rest of the reading. Bounded, since a host may send names of its own.
_NAMES: dict[str, tuple[str, str, str] | None] = {}
_NAMES_MAX = 1024


def _meaning(name: str) -> tuple[str, str, str] | None:
    if name in _NAMES:
        return _NAMES[name]
    meaning: tuple[str, str, str] | None = None
    if match := _UNIFIED.fullmatch(name):
        window = "unified-" + match["window"] if match["window"] else "unified"
        meaning = ("unified", window, match["field"])
    elif match := _ANTHROPIC.fullmatch(name):
        meaning = ("anthropic", match["window"], match["field"])
    elif match := _X.fullmatch(name):
        meaning = ("x", match["window"], match["field"])
    if len(_NAMES) >= _NAMES_MAX:
        _NAMES.clear()
    _NAMES[name] = meaning
    return meaning


def read_windows(
    headers: Mapping[str, str], now: float, model: str | None = None
) -> tuple[Window, ...]:
    """Every rate-limit window ``headers`` report (per-model ones marked ``model``);
    () when there are none.

    Unparseable values are left out (a malformed header never fails an answer). Absolute
    resets are put on our clock by the answer's ``Date``, as
    :class:`~sidecar.rotation.resets.HeaderReader` does for a refused answer.
    """
    found: dict[str, dict[str, Any]] = {}
    absolute: list[tuple[dict[str, Any], str]] = []  # resets on the provider's clock
    date: str | None = None
    for raw_name, raw_value in headers.items():
        name = str(raw_name).lower()
        if not (name.startswith("anthropic-ratelimit-") or name.startswith("x-ratelimit-")):
            if name == "date":
                date = str(raw_value)
            continue  # the common case, checked cheaply: most headers are not limits
        meaning = _meaning(name)
        if meaning is None:
            continue
        flavour, window, field = meaning
        value = str(raw_value)
        fields = found.get(window)
        if fields is None:
            fields = found[window] = _start(flavour, model)
        if field == "reset":
            if flavour == "x":
                seconds = duration_seconds(value)
                fields["reset_at"] = now + seconds if seconds is not None else None
            else:
                absolute.append((fields, value))
        elif field == "status":
            fields["status"] = value.strip().lower() or None
        else:  # limit, remaining, utilization: numbers
            fields[field] = number(value)
    if absolute:
        # On our clock by the answer's Date (as HeaderReader.absolute does): a local
        # clock that is off neither zeroes nor stretches a window.
        provider_now = http_date(date) if date is not None else None
        offset = 0.0 if provider_now is None else now - provider_now
        for fields, value in absolute:
            at = unix_or_rfc3339(value)
            fields["reset_at"] = None if at is None else at + offset
    return tuple(Window(name, seen_at=now, **fields) for name, fields in found.items())


def _start(flavour: str, model: str | None) -> dict[str, Any]:
    if flavour == "unified":
        return {"account": True}
    return {"steady": flavour == "anthropic", "model": model}


def windows_for(windows: Iterable[Window], model: str | None) -> list[Window]:
    """The windows that govern a request for ``model`` (scope): account-wide ones, and
    those of that model; with no model, all of them."""
    return [w for w in windows if w.account or model is None or w.model in (None, model)]


def blocked_until(windows: Iterable[Window], model: str | None, now: float) -> float:
    """Until when a request for ``model`` would be refused, by what the windows said
    (0.0: it would not be). A window whose reset has passed says nothing any more."""
    until = 0.0
    for w in windows_for(windows, model):
        at = w.usable_at()
        if at > now:
            until = max(until, at)
    return until


def lowest_fraction(windows: Iterable[Window], now: float) -> float | None:
    """The smallest share left in any window not yet reset; None when none says."""
    fractions = [
        f
        for w in windows
        if (w.reset_at is None or w.reset_at > now) and (f := w.fraction_left) is not None
    ]
    return min(fractions, default=None)


def flags(windows: Iterable[Window], scope: str | None, now: float) -> tuple[bool, bool]:
    """(spent, low) for a request for ``scope``, in one pass: whether a window would
    refuse it now, and whether one not yet reset is below :data:`LOW_FRACTION`. What
    decides if a new report must be written at once (the hot path asks every answer)."""
    spent = low = False
    for w in windows:
        if not (w.account or scope is None or w.model in (None, scope)):
            continue
        if w.reset_at is not None and w.reset_at <= now:
            continue
        if not spent and w.usable_at() > now:
            spent = True
        left = w.fraction_left
        if left is not None and left < LOW_FRACTION:
            low = True
    return spent, low
