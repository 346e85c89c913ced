"""The rules of rotation: which credential answers next, what a failure does to the state.

Unlike :mod:`~sidecar.rotation.keypool` (which reads and writes the store) and
:mod:`~sidecar.rotation.failover` (one request's loop), these are pure functions over one provider's rotation state (a JSON-able dict kept in
``state.json``) and its ordered credentials; the clock is a parameter. The
store-backed :class:`sidecar.rotation.keypool.KeyPool` applies them inside the store's
lock, so every sidecar process of the user sees the same state.

The state of one provider::

    {"current": state_key | None,       # the credential in use; None: the first
     "rotated": bool,                   # a rotation happened since the last success
     "cooldowns": {state_key: {"until": epoch, "reason": "rateLimit", "failures": n,
                               "billing": bool, "message": str}},
     "rejected": {state_key: {"reason": "auth", "message": str, "at": epoch}},
     "refused": {state_key: {"message": str, "at": epoch}},   # refused for its scope
     "usage": {state_key: {"requests": n, "failures": n, "lastUsed": epoch}}}

A credential is known by its :attr:`Credential.state_key`, never its secret.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable
from typing import Any

import attrs

from sidecar.credentials import Credential
from sidecar.errors import AllRateLimited, CredentialRejected, NoCredentials
from sidecar.rotation.classify import Failure, FailureClass, backoff_seconds

__all__ = [
    "PER_CREDENTIAL_VERDICTS",
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

# The sections of the state that hold what the provider said about one credential.
# Saving that credential again (a new login, a re-import, a re-pasted key) clears them.
PER_CREDENTIAL_VERDICTS = ("cooldowns", "rejected", "refused")

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


def usable_pool(creds: list[Credential], st: dict[str, Any]) -> list[Credential]:
    """The rotation pool: every credential the provider has not rejected."""
    rejected = _section(st, "rejected")
    return [c for c in creds if c.state_key not in rejected]


def _section(st: dict[str, Any], name: str) -> dict[str, Any]:
    value = st.get(name)
    if not isinstance(value, dict):
        value = st[name] = {}
    return value


def _cooldown_until(st: dict[str, Any], cred: Credential) -> float:
    entry = _section(st, "cooldowns").get(cred.state_key)
    until = entry.get("until") if isinstance(entry, dict) else None
    return float(until) if isinstance(until, int | float) else 0.0


def _is_expired(cred: Credential, now: float) -> bool:
    # An OAuth login past its access-token expiry is refreshed on use: not expired.
    return cred.kind != "oauth" and cred.expires_at is not None and cred.expires_at <= now


def _current_index(pool: list[Credential], st: dict[str, Any]) -> int:
    current = st.get("current")
    for i, cred in enumerate(pool):
        if cred.state_key == current:
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
    st: dict[str, Any],
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
            st["current"] = cred.state_key
            st["rotated"] = True
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
    pool: list[Credential], st: dict[str, Any], cred: Credential, failure: Failure, now: float
) -> Action:
    """Update ``st`` for a failure of ``cred`` and say what to do next.

    Eviction from the pool file is the caller's (it owns the store); here an
    evicted credential is marked rejected so it leaves the rotation.
    """
    usage = _section(st, "usage").setdefault(cred.state_key, {})
    usage["failures"] = int(usage.get("failures", 0)) + 1
    match failure.failure_class:
        case FailureClass.RATE_LIMIT:
            cooldowns = _section(st, "cooldowns")
            previous = cooldowns.get(cred.state_key) or {}
            failures = int(previous.get("failures", 0)) + 1
            until = failure.retry_at
            if until is None or until <= now:
                until = now + backoff_seconds(failures, billing=failure.billing)
            cooldowns[cred.state_key] = {
                "until": until,
                "reason": FailureClass.RATE_LIMIT.value,
                "failures": failures,
                "billing": failure.billing,
                "message": failure.message,
            }
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
            _section(st, "refused")[cred.state_key] = {"message": failure.message, "at": now}
            return Action.SKIP
        case _:
            return Action.RETURN


def reject(
    pool: list[Credential], st: dict[str, Any], cred: Credential, message: str, now: float
) -> None:
    """Take ``cred`` out of the rotation (invalid key, or a login that cannot be refreshed)."""
    _section(st, "rejected")[cred.state_key] = {"reason": "auth", "message": message, "at": now}
    _section(st, "cooldowns").pop(cred.state_key, None)
    _advance(pool, st, cred)


def _advance(pool: list[Credential], st: dict[str, Any], cred: Credential) -> None:
    """Make the credential after ``cred`` the current one: a rotation."""
    if len(pool) < 2:
        return
    keys = [c.state_key for c in pool]
    if cred.state_key in keys:
        st["current"] = keys[(keys.index(cred.state_key) + 1) % len(keys)]
        st["rotated"] = True


def record_usage(st: dict[str, Any], cred: Credential, now: float) -> None:
    """Count one successful request of ``cred``, and nothing else."""
    usage = _section(st, "usage").setdefault(cred.state_key, {})
    usage["requests"] = int(usage.get("requests", 0)) + 1
    usage["lastUsed"] = max(now, float(usage.get("lastUsed", 0)))


def record_success(st: dict[str, Any], cred: Credential, now: float) -> None:
    """``cred`` answered: it is current, cooled no more, and "(rotated)" clears."""
    record_usage(st, cred, now)
    _section(st, "cooldowns").pop(cred.state_key, None)
    _section(st, "refused").pop(cred.state_key, None)
    st["current"] = cred.state_key
    st["rotated"] = False


def reset(st: dict[str, Any]) -> None:
    """Back to the first credential; cooldowns, rejections and refusals cleared."""
    st["current"] = None
    st["rotated"] = False
    for section in PER_CREDENTIAL_VERDICTS:
        st[section] = {}


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _clock_text(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))
