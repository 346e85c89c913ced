"""Real rate limits for the fake: token buckets per key, and the headers computed from them.

The semantics follow the providers' documentation:

- Anthropic, https://docs.anthropic.com/en/api/rate-limits: requests, input tokens and
  output tokens per minute (RPM, ITPM, OTPM), each a token bucket: "your capacity is
  continuously replenished up to your maximum limit, rather than being reset at fixed
  intervals". Every response carries
  ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}``
  where ``reset`` is "the time when the rate limit will be fully replenished, provided in
  RFC 3339 format" and the ``tokens-*`` headers show "the most restrictive limit currently
  in effect". Token counts left are "rounded to the nearest thousand" (the requests left
  are exact), so a client cannot plan to the token from them. A 429 carries
  ``retry-after``, "the number of seconds to wait until you can retry the request.
  Earlier retries will fail."
- OpenAI, https://platform.openai.com/docs/guides/rate-limits: requests and tokens per
  minute, headers ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` where
  ``reset-*`` is "the time until the rate limit resets to its initial state", written as a
  duration (``1s``, ``6m0s``, ``20ms``). Modelled as fixed windows (``refill="window"``):
  a window's budget comes back whole when the window ends.

Limits are "per period": ``period=60`` is the providers' minute, a smaller period scales
time for tests (``period=6``: a minute lasts six seconds). Reset times are then written to
the millisecond (RFC 3339 allows fractions), because whole seconds would round a scaled
wait up by a large share of the period; at ``period >= 60`` they are whole seconds, as the
providers write them.

What a request costs: one request, its input tokens (the fake's estimate, the same
number its ``usage`` reports) and its output tokens (the reply's ``usage``), charged when
it is admitted. Anthropic estimates output from ``max_tokens`` and corrects it at the end;
the fake knows the reply in advance and charges the true count at once. A request is
admitted when every bucket holds what it needs (a need larger than a bucket waits for the
full bucket). A refused request (429) still costs one request, never tokens: a client that
retries blindly keeps its request bucket empty.

Per model: ``per_model=True`` gives each key one set of buckets per model scope, as the
providers count them: Anthropic per model class ("rate limits are applied separately for
each model class": every ``claude-sonnet-*`` shares the Sonnet limits), OpenAI per model.
A 429 on one model then leaves the key's other models untouched.

Subscriptions: ``unified=True`` reports the buckets the way Anthropic reports a Claude
subscription's account-wide windows, ``anthropic-ratelimit-unified-5h-{utilization,
reset,status}`` (utilisation a fraction 0..1, reset in Unix seconds, status ``allowed``,
``allowed_warning`` or ``rejected``) with the overall ``anthropic-ratelimit-unified-status``
and ``-reset``, instead of the per-model API-key headers.

Overload bursts (529 ``overloaded_error``) are independent of keys: every ``every``
seconds, from the limiter's start, for ``length`` seconds, every request that would have
been answered is refused with 529, and nothing is charged.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Literal

from sidecar.fake._render import Headers, go_duration

__all__ = [
    "Admission",
    "Bucket",
    "Overload",
    "RateLimiter",
    "RateLimits",
    "configure_ratelimit",
    "parse_limits",
    "parse_overload",
    "parse_spec",
]

Refill = Literal["continuous", "window"]
Clock = Callable[[], float]


def _positive(name: str, value: object, *, integer: bool) -> None:
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    if (
        not isinstance(value, kinds)
        or isinstance(value, bool)
        or not math.isfinite(value)  # type: ignore[arg-type]
        or value <= 0  # type: ignore[operator]
    ):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


@dataclass(frozen=True, slots=True)
class RateLimits:
    """One key's limits, each per ``period`` seconds; None: no such limit."""

    requests: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    tokens: int | None = None
    """Input and output together (OpenAI's TPM)."""
    period: float = 60.0
    refill: Refill = "continuous"
    """``continuous`` (Anthropic's token bucket) or ``window`` (fixed windows)."""
    per_model: bool = False
    """One set of buckets per model scope (model class on Anthropic, model on OpenAI)."""
    unified: bool = False
    """Anthropic: report the buckets as a subscription's unified 5-hour window."""

    def __post_init__(self) -> None:
        for name in ("requests", "input_tokens", "output_tokens", "tokens"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name), integer=True)
        _positive("period", self.period, integer=False)
        if self.refill not in ("continuous", "window"):
            raise ValueError(f"refill must be 'continuous' or 'window', got {self.refill!r}")

    @property
    def sizes(self) -> dict[str, int]:
        """The configured buckets by name: requests, input_tokens, output_tokens, tokens."""
        named = {
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "tokens": self.tokens,
        }
        return {name: size for name, size in named.items() if size is not None}


@dataclass(frozen=True, slots=True)
class Overload:
    """529 for ``length`` seconds out of every ``every``, whatever the key."""

    every: float
    length: float

    def __post_init__(self) -> None:
        _positive("every", self.every, integer=False)
        _positive("length", self.length, integer=False)
        if self.length > self.every:
            raise ValueError("overload length must not exceed every")


class Bucket:
    """One limit of one key: ``size`` units per ``period`` seconds."""

    __slots__ = ("level", "period", "refill", "size", "updated", "window_end")

    def __init__(self, size: int, period: float, refill: Refill, now: float) -> None:
        self.size = size
        self.period = period
        self.refill = refill
        self.level = float(size)  # starts full, as a key that was not used for a while
        self.updated = now
        self.window_end = now + period

    def _advance(self, now: float) -> None:
        if self.refill == "continuous":
            rate = self.size / self.period
            self.level = min(float(self.size), self.level + (now - self.updated) * rate)
            self.updated = max(self.updated, now)
        elif now >= self.window_end:
            self.level = float(self.size)
            missed = math.floor((now - self.window_end) / self.period) + 1
            self.window_end += missed * self.period

    def remaining(self, now: float) -> int:
        self._advance(now)
        return max(0, math.floor(self.level))

    def wait(self, need: float, now: float) -> float:
        """Seconds until ``need`` units are there (a need above the size waits for all)."""
        self._advance(now)
        need = min(need, float(self.size))
        if self.level >= need:
            return 0.0
        if self.refill == "continuous":
            return (need - self.level) * self.period / self.size
        return self.window_end - now

    def reset_in(self, now: float) -> float:
        """Seconds until the bucket is full again: the providers' ``reset``."""
        self._advance(now)
        if self.level >= self.size:
            return 0.0
        if self.refill == "continuous":
            return (self.size - self.level) * self.period / self.size
        return self.window_end - now

    def take(self, amount: float, now: float) -> None:
        self._advance(now)
        self.level = max(0.0, self.level - amount)


@dataclass(frozen=True, slots=True)
class Admission:
    """The limiter's answer: 200 (go on, with these headers), 429 or 529."""

    status: int
    headers: Headers
    retry_after: float | None = None
    """Seconds until the refused request would be admitted (429 only)."""


class _KeyBuckets:
    __slots__ = ("buckets", "limits")

    def __init__(self, limits: RateLimits, now: float) -> None:
        self.limits = limits
        self.buckets = {
            name: Bucket(size, limits.period, limits.refill, now)
            for name, size in limits.sizes.items()
        }


class RateLimiter:
    """Buckets per key, thread-safe: the server's loop admits, tests configure.

    ``limits[None]`` applies to every key without limits of its own. ``clock`` (monotonic
    seconds) and ``wall`` (epoch seconds, for RFC 3339 resets) are injectable for tests.
    """

    def __init__(
        self,
        limits: Mapping[str | None, RateLimits] | None = None,
        overload: Overload | None = None,
        *,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
    ) -> None:
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._initial = (dict(limits or {}), overload)
        self._limits: dict[str | None, RateLimits] = {}
        self._overload: Overload | None = None
        self._keys: dict[str, _KeyBuckets] = {}
        self._start = clock()
        self.reset()

    # -- configuration --

    def reset(self) -> None:
        """Back to the limits given at construction, every bucket full."""
        with self._lock:
            self._limits = dict(self._initial[0])
            self._overload = self._initial[1]
            self._keys.clear()
            self._start = self._clock()

    def configure(self, key: str | None, limits: RateLimits | None) -> None:
        """Set (None: remove) the limits of ``key``, or of every key when ``key`` is None.
        The buckets concerned start full."""
        with self._lock:
            if limits is None:
                self._limits.pop(key, None)
            else:
                self._limits[key] = limits
            if key is None:
                self._keys.clear()
            else:
                for slot in [s for s in self._keys if s == key or s.startswith(key + "\n")]:
                    del self._keys[slot]

    def set_overload(self, overload: Overload | None) -> None:
        """529 bursts from now on (None: none); the first burst starts now."""
        with self._lock:
            self._overload = overload
            self._start = self._clock()

    @property
    def active(self) -> bool:
        with self._lock:
            return bool(self._limits) or self._overload is not None

    # -- admission --

    def _buckets(self, key: str, now: float, model: str | None = None) -> _KeyBuckets | None:
        limits = self._limits.get(key, self._limits.get(None))
        if limits is None:
            return None
        slot = f"{key}\n{model_scope(model)}" if limits.per_model else key
        state = self._keys.get(slot)
        if state is None or state.limits is not limits:
            state = self._keys[slot] = _KeyBuckets(limits, now)
        return state

    def _overloaded(self, now: float) -> bool:
        overload = self._overload
        if overload is None:
            return False
        return (now - self._start) % overload.every < overload.length

    def admit(
        self,
        key: str,
        flavour: str,
        input_tokens: int,
        output_tokens: int,
        model: str | None = None,
    ) -> Admission:
        """Decide one request of ``key`` for ``model`` on the ``flavour`` endpoint
        (``anthropic`` or ``openai``) and charge it; the headers describe the buckets
        after the charge."""
        with self._lock:
            now = self._clock()
            state = self._buckets(key, now, model)
            if self._overloaded(now):
                headers = self._headers(state, flavour, now) if state else []
                return Admission(529, headers)
            if state is None:
                return Admission(200, [])
            needs = _needs(input_tokens, output_tokens)
            buckets = state.buckets
            wait = _wait(state, needs, now)
            if wait > 0:
                if "requests" in buckets:
                    buckets["requests"].take(1, now)
                    # The lost request may be what stands in the way now.
                    wait = max(wait, buckets["requests"].wait(1, now))
                headers = self._headers(state, flavour, now)
                headers.append(("retry-after", str(max(1, math.ceil(wait)))))
                return Admission(429, headers, wait)
            for name, bucket in buckets.items():
                bucket.take(needs[name], now)
            return Admission(200, self._headers(state, flavour, now))

    def wait(
        self, key: str, input_tokens: int, output_tokens: int, model: str | None = None
    ) -> float:
        """Seconds until the buckets of ``key`` would admit this request (0.0: now),
        charging nothing: what a client told "retry at T" needs to know about T. Overload
        bursts are not rate limits and do not count."""
        with self._lock:
            now = self._clock()
            state = self._buckets(key, now, model)
            if state is None:
                return 0.0
            return _wait(state, _needs(input_tokens, output_tokens), now)

    def snapshot(self, key: str, model: str | None = None) -> dict[str, dict[str, float]]:
        """Remaining units and seconds until full, per bucket of ``key`` (and ``model``,
        for per-model limits); empty: no limits."""
        with self._lock:
            now = self._clock()
            state = self._buckets(key, now, model)
            if state is None:
                return {}
            return {
                name: {"limit": b.size, "remaining": b.remaining(now), "reset": b.reset_in(now)}
                for name, b in state.buckets.items()
            }

    # -- headers --

    def _rfc3339(self, seconds: float, period: float) -> str:
        when = datetime.fromtimestamp(self._wall() + seconds, UTC)
        if period >= 60:
            # Whole seconds, rounded up, as the API writes them.
            when = datetime.fromtimestamp(math.ceil(self._wall() + seconds), UTC)
            return when.strftime("%Y-%m-%dT%H:%M:%SZ")
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"

    def _headers(self, state: _KeyBuckets, flavour: str, now: float) -> Headers:
        buckets = state.buckets
        period = state.limits.period
        # The "tokens" figure: a combined bucket if there is one, else the most
        # restrictive of input and output (the one with the fewest tokens left).
        tokens = buckets.get("tokens")
        if tokens is None:
            split = [buckets[n] for n in ("input_tokens", "output_tokens") if n in buckets]
            tokens = min(split, key=lambda b: b.remaining(now), default=None)
        headers: Headers = []
        if flavour == "anthropic" and state.limits.unified:
            return self._unified(buckets, now)
        if flavour == "anthropic":
            named = {
                "requests": buckets.get("requests"),
                "tokens": tokens,
                "input-tokens": buckets.get("input_tokens"),
                "output-tokens": buckets.get("output_tokens"),
            }
            for name, bucket in named.items():
                if bucket is None:
                    continue
                prefix = f"anthropic-ratelimit-{name}"
                left = bucket.remaining(now)
                if name != "requests":
                    left = _nearest_thousand(left)
                headers += [
                    (f"{prefix}-limit", str(bucket.size)),
                    (f"{prefix}-remaining", str(left)),
                    (f"{prefix}-reset", self._rfc3339(bucket.reset_in(now), period)),
                ]
        else:
            for name, bucket in (("requests", buckets.get("requests")), ("tokens", tokens)):
                if bucket is None:
                    continue
                headers += [
                    (f"x-ratelimit-limit-{name}", str(bucket.size)),
                    (f"x-ratelimit-remaining-{name}", str(bucket.remaining(now))),
                    (f"x-ratelimit-reset-{name}", go_duration(bucket.reset_in(now))),
                ]
        return headers

    def _unified(self, buckets: Mapping[str, Bucket], now: float) -> Headers:
        # The most used bucket stands for the subscription's 5-hour window.
        worst = max(buckets.values(), key=lambda b: 1 - b.remaining(now) / b.size)
        used = 1 - worst.remaining(now) / worst.size
        status = "rejected" if worst.remaining(now) < 1 else "allowed"
        if status == "allowed" and used >= 0.8:
            status = "allowed_warning"
        reset = str(math.ceil(self._wall() + worst.reset_in(now)))
        return [
            ("anthropic-ratelimit-unified-status", status),
            ("anthropic-ratelimit-unified-reset", reset),
            ("anthropic-ratelimit-unified-representative-claim", "five_hour"),
            ("anthropic-ratelimit-unified-5h-utilization", f"{used:.2f}"),
            ("anthropic-ratelimit-unified-5h-reset", reset),
            ("anthropic-ratelimit-unified-5h-status", status),
        ]


def _needs(input_tokens: int, output_tokens: int) -> dict[str, float]:
    """What one request takes from each bucket."""
    return {
        "requests": 1.0,
        "input_tokens": float(input_tokens),
        "output_tokens": float(output_tokens),
        "tokens": float(input_tokens + output_tokens),
    }


def _wait(state: _KeyBuckets, needs: Mapping[str, float], now: float) -> float:
    """Seconds until every bucket of ``state`` holds what ``needs`` asks of it."""
    return max((b.wait(needs[name], now) for name, b in state.buckets.items()), default=0.0)


def model_scope(model: str | None) -> str:
    """What a per-model limit is shared by: the Anthropic model class, else the model."""
    name = (model or "").lower()
    for cls in ("opus", "sonnet", "haiku"):
        if name.startswith("claude") and cls in name:
            return cls
    return name


def _nearest_thousand(n: int) -> int:
    # Half up, as a reader of "rounded to the nearest thousand" expects (not to even).
    return (n + 500) // 1000 * 1000


# -- JSON and command-line forms ---------------------------------------------------------


def parse_limits(value: object) -> RateLimits:
    """``{"requests": 50, "input_tokens": 30000, "period": 6, "refill": "continuous"}``."""
    if not isinstance(value, Mapping):
        raise ValueError(f"limits must be an object, got {value!r}")
    known = {f.name for f in fields(RateLimits)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(f"limits: unknown field(s) {unknown}; expected some of {sorted(known)}")
    return RateLimits(**value)


def parse_overload(value: object) -> Overload | None:
    """``{"every": 10, "length": 1}``, or null for none."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"every", "length"}:
        raise ValueError(f"overload must be {{'every', 'length'}} or null, got {value!r}")
    return Overload(**value)


def parse_spec(spec: str) -> dict[str, Any]:
    """``requests=50,input_tokens=30000,period=6,refill=window`` (a command-line value)
    as the JSON form: numbers where they parse, strings elsewhere."""
    out: dict[str, Any] = {}
    for item in spec.split(","):
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"expected name=value, got {item!r}")
        value: Any = text.strip()
        for convert in (int, float):
            try:
                value = convert(text)
                break
            except ValueError:
                continue
        out[name.strip().replace("-", "_")] = value
    return out


def configure_ratelimit(limiter: RateLimiter, value: object) -> None:
    """``POST /_fake/ratelimit``: ``{"key"?: K, "limits": {...} | null}`` (no key: every
    key), and/or ``{"overload": {"every", "length"} | null}``."""
    if not isinstance(value, Mapping) or not set(value) <= {"key", "limits", "overload"}:
        raise ValueError(f"expected {{'key'?, 'limits'?, 'overload'?}}, got {value!r}")
    key = value.get("key")
    if key is not None and not isinstance(key, str):
        raise ValueError("ratelimit: 'key' must be a string")
    if "limits" in value:
        limits = value["limits"]
        limiter.configure(key, None if limits is None else parse_limits(limits))
    if "overload" in value:
        limiter.set_overload(parse_overload(value["overload"]))
