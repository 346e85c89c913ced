"""The rules of rotation: which credential answers next, what a failure does to the state.

Unlike :mod:`~sidecar.rotation.keypool` (which reads and writes the store) and
:mod:`~sidecar.rotation.failover` (one request's loop), these are pure functions over
one provider's typed :class:`~sidecar.rotation.state.RotationState` and its ordered
credentials; the clock is a parameter. The key pool applies them inside the store's
lock, so every sidecar process of the user sees the same state.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable

import attrs

from sidecar.credentials import Credential
from sidecar.errors import AllRateLimited, CredentialRejected, NoCredentials
from sidecar.rotation.classify import Failure, FailureClass, backoff_seconds
from sidecar.rotation.state import Cooldown, RotationState, Usage, Verdict

__all__ = [
    "SCOPE_ADVICE",
    "Action",
    "choose",
    "order_credentials",
    "record_failure",
    "record_success",
    "record_usage",
    "reset",
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
) -> Choice:
    """The current credential if usable, else the next usable one in order.

    Moving past the current credential is a rotation: it is recorded in ``st``.
    ``skip`` holds state keys refused for this request only (scope refusals).
    Raises NoCredentials, CredentialRejected or AllRateLimited when none is usable.
    """
    if not pool:
        raise NoCredentials(
            f"no credentials for {provider}: add a key with `llm-sidecar key add --provider "
            f"{provider}`, log in, or set {provider.upper()}_API_KEY",
            {"provider": provider},
        )
    skipped = set(skip)
    start = _current_index(pool, st)
    for offset in range(len(pool)):
        i = (start + offset) % len(pool)
        cred = pool[i]
        if cred.state_key in skipped or _is_expired(cred, now):
            continue
        if _cooldown_until(st, cred) > now:
            continue
        moved = bool(offset) and len(pool) > 1
        if moved:
            st.current = cred.state_key
            st.rotated = True
        return Choice(cred, i, len(pool), moved)

    cooling = [_cooldown_until(st, c) for c in pool if _cooldown_until(st, c) > now]
    if cooling:
        earliest = min(cooling)
        raise AllRateLimited(
            f"all {len(pool)} {provider} credential(s) are rate limited; "
            f"the earliest is usable again at {_clock_text(earliest)}",
            {"provider": provider, "keys": len(pool), "retryAt": _iso(earliest)},
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
    pool: list[Credential], st: RotationState, cred: Credential, failure: Failure, now: float
) -> Action:
    """Update ``st`` for a failure of ``cred`` and say what to do next.

    Eviction from the pool file is the caller's (it owns the store); here an
    evicted credential is marked rejected so it leaves the rotation.
    """
    st.usage.setdefault(cred.state_key, Usage()).failures += 1
    match failure.failure_class:
        case FailureClass.RATE_LIMIT:
            previous = st.cooldowns.get(cred.state_key)
            failures = (previous.failures if previous is not None else 0) + 1
            until = failure.retry_at
            if until is None or until <= now:
                until = now + backoff_seconds(failures, billing=failure.billing)
            st.cooldowns[cred.state_key] = Cooldown(
                until=until,
                failures=failures,
                billing=failure.billing,
                message=failure.message,
                reason=FailureClass.RATE_LIMIT.value,
            )
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
    _advance(pool, st, cred)


def _advance(pool: list[Credential], st: RotationState, cred: Credential) -> None:
    """Make the credential after ``cred`` the current one: a rotation."""
    if len(pool) < 2:
        return
    keys = [c.state_key for c in pool]
    if cred.state_key in keys:
        st.current = keys[(keys.index(cred.state_key) + 1) % len(keys)]
        st.rotated = True


def record_usage(st: RotationState, cred: Credential, now: float) -> None:
    """Count one successful request of ``cred``, and nothing else."""
    usage = st.usage.setdefault(cred.state_key, Usage())
    usage.requests += 1
    usage.last_used = max(now, usage.last_used or 0.0)


def record_success(st: RotationState, cred: Credential, now: float) -> None:
    """``cred`` answered: it is current, cooled no more, and "(rotated)" clears."""
    record_usage(st, cred, now)
    st.cooldowns.pop(cred.state_key, None)
    st.refused.pop(cred.state_key, None)
    st.current = cred.state_key
    st.rotated = False


def reset(st: RotationState) -> None:
    """Back to the first credential; cooldowns, rejections and refusals cleared."""
    st.current = None
    st.rotated = False
    st.cooldowns.clear()
    st.rejected.clear()
    st.refused.clear()


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _clock_text(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))
