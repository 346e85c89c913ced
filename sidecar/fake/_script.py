"""Script steps as JSON, and the script of one credential.

A step's JSON form is parsed by looking its ``kind`` up in :data:`KINDS` and calling
that very constructor (:mod:`sidecar.fake._steps`, :mod:`sidecar.fake._presets`) with
the remaining fields as keyword arguments, so the two forms cannot drift apart.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sidecar.fake._presets import (
    ExtraUsageRequired,
    GoogleQuotaExceeded,
    InvalidKey,
    OutOfCredit,
    Overloaded,
    ProxyErrorPage,
    RateLimited,
    ScopeRefused,
)
from sidecar.fake._steps import Drop, Error, Reply, Step

KINDS: dict[str, Callable[..., Step]] = {
    "reply": Reply,
    "error": Error,
    "drop": Drop,
    "rate_limited": RateLimited,
    "overloaded": Overloaded,
    "invalid_key": InvalidKey,
    "scope_refused": ScopeRefused,
    "proxy_error": ProxyErrorPage,
    "google_quota_exceeded": GoogleQuotaExceeded,
    "out_of_credit": OutOfCredit,
    "extra_usage_required": ExtraUsageRequired,
}


def parse_step(value: object) -> Step:
    """A step from its JSON form, e.g. ``{"kind": "rate_limited", "retry_after": 5}``."""
    if isinstance(value, Reply | Error | Drop):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"a step must be an object with a 'kind', got {value!r}")
    kind = value.get("kind")
    make = KINDS.get(kind) if isinstance(kind, str) else None
    if make is None:
        raise ValueError(f"unknown step kind {kind!r}; expected one of {sorted(KINDS)}")
    kwargs = {k: v for k, v in value.items() if k != "kind"}
    accepted = inspect.signature(make).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"{kind} step: unknown field(s) {unknown}; accepted: {sorted(accepted)}")
    try:
        return make(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{kind} step: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{kind} step: {exc}") from None


@dataclass(frozen=True, slots=True)
class Script:
    """What one credential answers: ``steps`` one per request, then ``default``."""

    key: str
    steps: tuple[Step, ...] = ()
    default: Step = field(default_factory=Reply)


def parse_script(value: object) -> Script:
    """``{"key": K, "steps": [...], "default": step?}`` as sent to ``/_fake/script``."""
    if not isinstance(value, Mapping):
        raise ValueError(f"a script must be an object, got {value!r}")
    unknown = sorted(set(value) - {"key", "steps", "default"})
    if unknown:
        raise ValueError(f"script: unknown field(s) {unknown}")
    key = value.get("key")
    if not isinstance(key, str) or not key:
        raise ValueError("script: 'key' must be a non-empty string")
    steps = value.get("steps", [])
    if not isinstance(steps, list):
        raise ValueError("script: 'steps' must be a list")
    default = value.get("default")
    return Script(
        key,
        tuple(parse_step(s) for s in steps),
        Reply() if default is None else parse_step(default),
    )
