"""Whether the retry time a user-visible error carried proved right, against the fake's buckets.

An error "proved right within a second" when a request issued at the moment it named
would have been admitted on one of the user's keys, and would not already have been
admitted a second before that moment (the time was not needlessly late). Both are read
from the fake's own buckets: the fake host logs every decision of its rate limiter
(``bench/fakehost.py``, op ``admissions``), and :func:`judge` replays them, in order, on
a :class:`~sidecar.fake.RateLimiter` of the same limits run on the logged clock, asking
it at those two moments how long the errored request would have waited
(:meth:`~sidecar.fake.RateLimiter.wait`, which charges nothing). The replay must reach
the fake's own verdicts; :func:`judge` counts where it does not.

After the run's last decision the buckets only fill: a retry time past the run's end is
judged as if no one else used the keys meanwhile, which is what the run did.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sidecar.fake import RateLimiter
from sidecar.fake._ratelimit import parse_limits
from sidecar.fingerprints import fingerprint

__all__ = ["WITHIN_S", "Judged", "Told", "judge", "retry_moment"]

WITHIN_S = 1.0


@dataclass(frozen=True)
class Told:
    """One user-visible error: when it reached the user and when it said to retry, both
    ``time.perf_counter()`` seconds (None: it named no time); what the request needs."""

    at: float
    retry: float | None
    input_tokens: int
    output_tokens: int


@dataclass
class Judged:
    right: int = 0  # retry times that proved right within WITHIN_S
    early: int = 0  # a request at the named moment would have been refused
    late: int = 0  # it would already have been admitted WITHIN_S before
    mismatches: int = 0  # replayed decisions that differ from the fake's (should be 0)


def retry_moment(
    exc: BaseException, at: float, wall: Callable[[], float] = time.time
) -> float | None:
    """The moment (``perf_counter`` seconds) ``exc`` told its user to retry, or None;
    ``at`` is when it arrived, ``wall`` the clock an RFC 3339 instant is read against.

    The sidecar's JSON-RPC error names an instant (``data.retryAt``, RFC 3339); an HTTP
    answer (the gateway's, the SDK's, LiteLLM's) names seconds from its arrival
    (``retry-after``), and so does LiteLLM's Router when it has no deployment left
    (``cooldown_time``).
    """
    data = getattr(exc, "data", None)
    if isinstance(data, dict) and isinstance(data.get("retryAt"), str):
        epoch = datetime.fromisoformat(data["retryAt"].replace("Z", "+00:00")).timestamp()
        return at + (epoch - wall())
    seconds = getattr(exc, "retry_after", None)  # bench.goodput_contenders.GatewayError
    if seconds is None:
        # LiteLLM's Router, every deployment cooling down: "Try again in N seconds".
        seconds = getattr(exc, "cooldown_time", None)
    if seconds is None:
        for headers in (
            getattr(getattr(exc, "response", None), "headers", None),
            getattr(exc, "litellm_response_headers", None),  # LiteLLM's errors
        ):
            if headers is not None and headers.get("retry-after") is not None:
                seconds = headers.get("retry-after")
                break
    try:
        return at + float(seconds) if seconds is not None else None
    except ValueError:  # an HTTP date: not what any of these sends
        return None


def judge(
    admissions: Iterable[Sequence[Any]],
    limits: dict[str, Any],
    keys: Sequence[str],
    model: str,
    told: Iterable[Told],
) -> Judged:
    """Replay the fake's decisions of one run and judge each error that named a time."""
    now = [0.0]
    limiter = RateLimiter({None: parse_limits(limits)}, clock=lambda: now[0])
    prints = [fingerprint(k) for k in keys]
    # (time, 0: a decision | 1: a question, payload); a question at the same instant as
    # a decision comes after it.
    events: list[tuple[float, int, Any]] = [(a[0] / 1e9, 0, a) for a in admissions]
    asked = [t for t in told if t.retry is not None]
    for number, t in enumerate(asked):
        assert t.retry is not None
        events.append((t.retry, 1, (number, "at")))
        if t.retry - WITHIN_S > t.at:
            events.append((t.retry - WITHIN_S, 1, (number, "before")))
    events.sort(key=lambda e: (e[0], e[1]))
    waits: dict[tuple[int, str], float] = {}
    out = Judged()
    for when, kind, payload in events:
        now[0] = max(now[0], when)
        if kind == 0:
            _, key, scope, input_tokens, output_tokens, status = payload
            verdict = limiter.admit(key, "anthropic", input_tokens, output_tokens, scope)
            out.mismatches += verdict.status != status
            continue
        t = asked[payload[0]]
        waits[payload] = min(
            (limiter.wait(k, t.input_tokens, t.output_tokens, model) for k in prints),
            default=math.inf,
        )
    for number in range(len(asked)):
        if waits[(number, "at")] > 0:
            out.early += 1
        elif waits.get((number, "before"), math.inf) == 0:
            out.late += 1
        else:
            out.right += 1
    return out
