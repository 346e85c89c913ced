"""The rules of rotation: which credential answers next, what a failure does to the state.

Unlike :mod:`~sidecar.rotation.keypool` (which reads and writes the store) and
:mod:`~sidecar.rotation.failover` (one request's loop), these are pure functions over
one provider's typed :class:`~sidecar.rotation.state.RotationState` and its ordered
credentials; the clock is a parameter. The key pool applies them inside the store's
lock, so every sidecar process of the user sees the same state.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Iterable

import attrs

from sidecar.credentials import Credential
from sidecar.errors import AllRateLimited, CredentialRejected, NoCredentials
from sidecar.rotation.classify import Failure, FailureClass, backoff_seconds
from sidecar.rotation.headroom import Window, blocked_until
from sidecar.rotation.state import Cooldown, RotationState, Usage, Verdict

__all__ = [
    "SCOPE_ADVICE",
    "Action",
    "choose",
    "merge_windows",
    "order_credentials",
    "record_failure",
    "record_headroom",
    "record_success",
    "record_usage",
    "reset",
    "retry_at_text",
    "usable_pool",
]

SCOPE_ADVICE = (
    "a subscription login may only be usable in its vendor's own app: use an API key instead"
)


class Action(enum.Enum):
    """What the engine does after a failure."""

    RETRY = "retry"  # try the next credential (rate limit, evicted key)
    REFRESH = "refresh"  # refresh this OAuth login once, then retry it
    SKIP = "skip"  # refused for its scope: skip it for this request, keep it on disk
    RETURN = "return"  # a request error: give it to the client as is


# -- the pool ------------------------------------------------------------------


def order_credentials(
    order: list[str],
    pool: list[Credential],
    profiles: list[Credential],
    env: list[Credential],
) -> list[Credential]:
    """Explicit order first, then pool entries, other profiles, environment keys.

    Deduplicated by secret: the first place a secret appears wins.
    """
    # Environment ids (env:VAR) may be in the explicit order too: status shows them,
    # so `auth order set` takes them.
    by_id = {c.id: c for c in (*pool, *profiles, *env)}
    ordered = [by_id[i] for i in order if i in by_id]
    seen_ids = {c.id for c in ordered}
    ordered += [c for c in (*pool, *profiles, *env) if c.id not in seen_ids]
    seen: set[str] = set()
    result = []
    for cred in ordered:
        if cred.secret not in seen:
            seen.add(cred.secret)
            result.append(cred)
    return result


def usable_pool(creds: list[Credential], st: RotationState) -> list[Credential]:
    """The rotation pool: every credential the provider has not rejected."""
    return [c for c in creds if c.state_key not in st.rejected]


def _cooldown_until(st: RotationState, cred: Credential) -> float:
    entry = st.cooldowns.get(cred.state_key)
    return entry.until if entry is not None else 0.0


def blocked(st: RotationState, cred: Credential, scope: str | None, now: float) -> float:
    """Until when ``cred`` may not serve a request for model ``scope`` (0.0: it may):
    its own cooldown, its cooldown for that model, or a window the provider said is
    spent. With no scope, only what rests the whole credential counts."""
    key = cred.state_key
    until = _cooldown_until(st, cred)
    if scope is not None:
        entry = st.model_cooldowns.get(key, {}).get(scope)
        if entry is not None:
            until = max(until, entry.until)
    windows = st.windows(key) if key in st.headroom or key in st.headroom_raw else ()
    if windows:
        # With no scope, a model's spent window does not stop the whole key.
        gate = [w for w in windows if w.account] if scope is None else windows
        until = max(until, blocked_until(gate, scope, now))
    return until if until > now else 0.0


def _is_expired(cred: Credential, now: float) -> bool:
    # An OAuth login past its access-token expiry is refreshed on use: not expired.
    return cred.kind != "oauth" and cred.expires_at is not None and cred.expires_at <= now


def _current_index(pool: list[Credential], st: RotationState) -> int:
    for i, cred in enumerate(pool):
        if cred.state_key == st.current:
            return i
    return 0


# -- choosing ------------------------------------------------------------------


@attrs.frozen
class Choice:
    credential: Credential
    index: int  # 0-based position in the pool
    size: int
    rotated: bool = False  # choosing it moved the pool past the current credential


def choose(
    provider: str,
    pool: list[Credential],
    st: RotationState,
    now: float,
    skip: Iterable[str] = (),
    scope: str | None = None,
) -> Choice:
    """The current credential if usable, else the next usable one in order.

    With the ``primary`` policy the search starts at the first credential instead, so
    the pool goes back to it as soon as it is usable again. Moving off the current
    credential is a rotation: it is recorded in ``st``. ``skip`` holds state keys
    refused for this request only (scope refusals); ``scope`` is the request's model
    scope (:func:`sidecar.rotation.headroom.model_scope`), for per-model cooldowns and
    windows. Raises NoCredentials, CredentialRejected or AllRateLimited when none is
    usable.
    """
    if not pool:
        raise NoCredentials(
            f"no credentials for {provider}: add a key with `llm-sidecar key add --provider "
            f"{provider}`, log in, or set {provider.upper()}_API_KEY",
            {"provider": provider},
        )
    skipped = set(skip)
    current = _current_index(pool, st)
    start = 0 if st.policy == "primary" else current
    for offset in range(len(pool)):
        i = (start + offset) % len(pool)
        cred = pool[i]
        if cred.state_key in skipped or _is_expired(cred, now):
            continue
        if blocked(st, cred, scope, now):
            continue
        moved = i != current and len(pool) > 1
        if moved:
            st.current = cred.state_key
            # Back on the first key under ``primary`` is where the user wants to be.
            st.rotated = not (st.policy == "primary" and i == 0)
        return Choice(cred, i, len(pool), moved)

    cooling = [b for c in pool if (b := blocked(st, c, scope, now))]
    if cooling:
        earliest = min(cooling)
        billing = all(
            (entry := st.cooldowns.get(c.state_key)) is not None and entry.billing
            for c in pool
            if blocked(st, c, scope, now)
        )
        what = "out of credit" if billing else "rate limited"
        raise AllRateLimited(
            f"all {len(pool)} {provider} credential(s) are {what}; "
            f"the earliest is usable again at {_clock_text(earliest)}",
            {"provider": provider, "keys": len(pool), "retryAt": retry_at_text(earliest)},
            retry_at=earliest,
        )
    if skipped:
        raise CredentialRejected(
            f"every {provider} credential was refused for this use; {SCOPE_ADVICE}",
            {"provider": provider, "keys": len(pool)},
        )
    raise NoCredentials(
        f"every {provider} credential has expired: log in again or add a key",
        {"provider": provider, "keys": len(pool)},
    )


# -- outcomes ------------------------------------------------------------------


def record_failure(
    pool: list[Credential],
    st: RotationState,
    cred: Credential,
    failure: Failure,
    now: float,
    scope: str | None = None,
) -> Action:
    """Update ``st`` for a failure of ``cred`` and say what to do next.

    Eviction from the pool file is the caller's (it owns the store); here an
    evicted credential is marked rejected so it leaves the rotation. A rate limit of
    one model (``scope``) cools only that model's requests on ``cred``; one that
    concerns the whole account (billing, unified windows, any limit of a subscription
    login), or of an unknown model, cools the credential.
    """
    st.usage.setdefault(cred.state_key, Usage()).failures += 1
    record_headroom(st, cred, failure.windows, scope)
    match failure.failure_class:
        case FailureClass.RATE_LIMIT:
            # A subscription login's limits are its account's, whatever headers said.
            subscription = cred.kind in ("oauth", "token")
            whole = scope is None or failure.account_wide or subscription
            table = st.cooldowns if whole else st.model_cooldowns.setdefault(cred.state_key, {})
            slot = cred.state_key if whole else scope
            assert slot is not None
            table[slot] = _cooldown(table.get(slot), failure, now)
            if whole:
                _advance(pool, st, cred)
            return Action.RETRY
        case FailureClass.AUTH:
            if cred.kind == "oauth" and cred.refresh:
                return Action.REFRESH
            reject(pool, st, cred, failure.message, now)
            return Action.RETRY
        case FailureClass.SCOPE:
            # Kept, and tried again by the next request; recorded so that status says
            # why it did not answer even when another key did.
            st.refused[cred.state_key] = Verdict(failure.message, now)
            return Action.SKIP
        case _:
            return Action.RETURN


def reject(
    pool: list[Credential], st: RotationState, cred: Credential, message: str, now: float
) -> None:
    """Take ``cred`` out of the rotation (invalid key, or a login that cannot be refreshed)."""
    st.rejected[cred.state_key] = Verdict(message, now, reason="auth")
    st.cooldowns.pop(cred.state_key, None)
    st.model_cooldowns.pop(cred.state_key, None)
    _advance(pool, st, cred)


def _advance(pool: list[Credential], st: RotationState, cred: Credential) -> None:
    """Make the credential after ``cred`` the current one: a rotation."""
    if len(pool) < 2:
        return
    keys = [c.state_key for c in pool]
    if cred.state_key in keys:
        st.current = keys[(keys.index(cred.state_key) + 1) % len(keys)]
        st.rotated = True


def _cooldown(previous: Cooldown | None, failure: Failure, now: float) -> Cooldown:
    """The next rest of one scope: the provider's time, else the ladder's next rung.

    The rung counts failures in a row (only a success resets it), and a failure while
    a cooldown runs (another process's request, one already in flight) extends it,
    never shortens it. Out of credit and overloaded never take a window's reset: a
    billing 429 comes with the per-second windows of an account that is merely empty,
    and a 529 is the provider's load, which passes in seconds.
    """
    failures = (previous.failures if previous is not None else 0) + 1
    overloaded = failure.overloaded and not failure.billing
    until = failure.retry_at if not (failure.billing or overloaded) else None
    if until is None or until <= now:
        until = now + backoff_seconds(failures, billing=failure.billing, overloaded=overloaded)
    if previous is not None and previous.until > until:
        until = previous.until
    return Cooldown(
        until=until,
        failures=failures,
        billing=failure.billing,
        message=failure.message,
        reason="overloaded" if overloaded else FailureClass.RATE_LIMIT.value,
    )


def record_headroom(
    st: RotationState, cred: Credential, windows: Iterable[Window], scope: str | None
) -> bool:
    """Keep the latest windows the provider reported for ``cred``; whether any changed.

    A window of a model is stored with its scope, so that what one model's answer said
    never stops another model's requests; account-wide (unified) windows are the
    credential's.
    """
    fresh = [w if w.account or w.model == scope else attrs.evolve(w, model=scope) for w in windows]
    return merge_windows(st, cred.state_key, fresh)


def merge_windows(st: RotationState, state_key: str, fresh: Iterable[Window]) -> bool:
    """Keep, of each window, the latest report: ours or one another process (or, through
    the team's state, another machine) wrote. Whether any changed."""
    fresh = list(fresh)
    if not fresh:
        return False
    old = st.windows(state_key)
    newer = {(w.name, w.account, w.model): w.seen_at for w in old}
    fresh = [w for w in fresh if w.seen_at >= newer.get((w.name, w.account, w.model), 0.0)]
    mine = {(w.name, w.account, w.model) for w in fresh}
    kept = [w for w in old if (w.name, w.account, w.model) not in mine]
    merged = tuple(kept + fresh)
    if old == merged:
        return False
    st.set_windows(state_key, merged)
    return True


def record_usage(st: RotationState, cred: Credential, now: float) -> None:
    """Count one successful request of ``cred``, and nothing else."""
    usage = st.usage.setdefault(cred.state_key, Usage())
    usage.requests += 1
    usage.last_used = max(now, usage.last_used or 0.0)


def record_success(
    st: RotationState, cred: Credential, now: float, scope: str | None = None
) -> None:
    """``cred`` answered: it is current, cooled no more (for that model: its other
    models' cooldowns stand), its backoff ladders start over, and "(rotated)" clears."""
    record_usage(st, cred, now)
    st.cooldowns.pop(cred.state_key, None)
    models = st.model_cooldowns.get(cred.state_key)
    if models is not None:
        if scope is None:
            models.clear()
        else:
            models.pop(scope, None)
        if not models:
            del st.model_cooldowns[cred.state_key]
    st.refused.pop(cred.state_key, None)
    st.current = cred.state_key
    st.rotated = False


def reset(st: RotationState) -> None:
    """Back to the first credential; cooldowns, rejections, refusals and the windows the
    provider reported cleared (the user says: try them all again)."""
    st.current = None
    st.rotated = False
    st.cooldowns.clear()
    st.model_cooldowns.clear()
    st.clear_headroom()
    st.rejected.clear()
    st.refused.clear()


def retry_at_text(ts: float) -> str:
    """``retryAt`` on the wire: RFC 3339 in whole seconds, rounded up. Rounded down (as
    it was), a client that retried at the named second was refused for the fraction
    left (the goodput benchmark's retry times came out early)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.ceil(ts)))


def _clock_text(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))
