"""What a status bar shows for a provider and each of its credentials: state and text.

Unlike :mod:`sidecar.rotation.rules`, which decides, this only describes: it reads one
provider's state (never changes it) and says ``🔑 2/3 (rotated)``, ``🔑 rate limited
until 14:05:00``, ``🔑 1/3 · 6% left`` (the key in use is low on a window), ``🔑 out of
credit`` or why a credential is out; each credential's windows (limit, remaining,
reset) and per-model cooldowns go with it for the tooltips.
"""

from __future__ import annotations

import enum
import functools
from typing import Literal

import attrs

from sidecar.credentials import Credential
from sidecar.rotation.headroom import LOW_FRACTION, Window, lowest_fraction
from sidecar.rotation.rules import (
    SCOPE_ADVICE,
    _clock_text,
    _current_index,
    _is_expired,
    usable_pool,
)
from sidecar.rotation.state import RotationState, Usage

__all__ = [
    "EXPIRING_WITHIN",
    "CredentialStatus",
    "ModelCooldown",
    "ProviderStatus",
    "StatusKind",
    "changes_at",
    "credential_state",
    "provider_status",
]

EXPIRING_WITHIN = 24 * 3600.0  # a credential expiring sooner than this is "expiring"

State = Literal["ok", "expiring", "expired", "coolingDown", "outOfCredit", "rejected", "refused"]
# Whose requests a credential's usage counts: this machine's (the files), or, with a
# team's state online, every machine's added up.
Counted = Literal["machine", "team"]


class StatusKind(enum.Enum):
    NORMAL = "Normal"
    WARNING = "Warning"
    ERROR = "Error"
    INACTIVE = "Inactive"


@attrs.frozen
class ModelCooldown:
    """A credential resting for one model scope only (its other models still answer)."""

    model: str
    until: float
    reason: str  # rateLimit or overloaded
    message: str = ""  # the provider's words


@attrs.frozen
class CredentialStatus:
    id: str
    kind: str
    source: str
    fingerprint: str
    state: State
    expires_at: float | None = None
    cooldown_until: float | None = None
    message: str | None = None
    label: str | None = None
    windows: tuple[Window, ...] = ()  # the latest the provider reported, not yet reset
    model_cooldowns: tuple[ModelCooldown, ...] = ()
    usage: Usage | None = None  # None: never used (nor, with a team, by anyone)
    counted: Counted = "machine"

    @property
    def resting_until(self) -> float | None:
        """When the credential rests until, whole or for a model (the earliest such end);
        None when it does not rest at all."""
        if self.cooldown_until is not None:
            return self.cooldown_until
        return min((m.until for m in self.model_cooldowns), default=None)

    @property
    def fraction_left(self) -> float | None:
        """The smallest share left of any window (None: the provider reported none)."""
        return lowest_fraction(self.windows, 0.0)


@attrs.frozen
class ProviderStatus:
    provider: str
    kind: StatusKind
    text: str
    index: int  # 1-based position of the current credential; 0 when there is none
    size: int
    rotated: bool
    credentials: tuple[CredentialStatus, ...]
    message: str | None = None


def credential_state(cred: Credential, st: RotationState | None, now: float) -> CredentialStatus:
    """One credential's state; ``st`` None for one outside any pool (a login just saved)."""
    st = st if st is not None else RotationState()
    key = cred.state_key  # a hash of the secret: computed once here
    if cred.expires_at is None and not _has_entries(st, key):
        return _untouched(cred)
    rejected = st.rejected.get(key)
    refused = st.refused.get(key)
    cooldown = st.cooldowns.get(key)
    until = cooldown.until if cooldown is not None else 0.0
    state: State
    message = None
    if rejected is not None:
        state = "rejected"
        message = rejected.message or "rejected by the provider"
    elif refused is not None:
        state = "refused"
        said = refused.message.strip().rstrip(".")
        message = f"refused for this use ({said}); {SCOPE_ADVICE}" if said else SCOPE_ADVICE
    elif _is_expired(cred, now):
        state, message = "expired", "expired: replace it or log in again"
    elif cooldown is not None and until > now and cooldown.billing:
        state = "outOfCredit"
        message = _credit_advice(cred.provider, cooldown.message)
    elif cooldown is not None and until > now:
        state = "coolingDown"
        message = cooldown.message or None
    elif (
        cred.kind != "oauth"
        and cred.expires_at is not None
        and cred.expires_at - now < EXPIRING_WITHIN
    ):
        state = "expiring"
    else:
        state = "ok"
    return CredentialStatus(
        id=cred.id,
        kind=cred.kind,
        source=cred.source,
        fingerprint=cred.fingerprint,
        state=state,
        expires_at=cred.expires_at,
        cooldown_until=until if until > now else None,
        message=message,
        label=cred.label,
        windows=tuple(w for w in st.windows(key) if w.reset_at is None or w.reset_at > now),
        model_cooldowns=tuple(
            ModelCooldown(model, c.until, c.reason, c.message)
            for model, c in sorted(st.model_cooldowns.get(key, {}).items())
            if c.until > now
        ),
        usage=st.usage.get(key),
    )


def _has_entries(st: RotationState, key: str) -> bool:
    """Whether the state says anything of the credential with state key ``key``."""
    return (
        key in st.rejected
        or key in st.refused
        or key in st.cooldowns
        or key in st.model_cooldowns
        or key in st.headroom
        or key in st.headroom_raw
        or key in st.usage
    )


@functools.lru_cache(maxsize=20_000)  # pools larger than this derive each time
def _untouched(cred: Credential) -> CredentialStatus:
    """The state of a credential that never expires and that the state says nothing of:
    the same at any time, so derived once (most of a large pool, most of the time)."""
    return CredentialStatus(
        id=cred.id,
        kind=cred.kind,
        source=cred.source,
        fingerprint=cred.fingerprint,
        state="ok",
        label=cred.label,
    )


def _credit_advice(provider: str, said: str) -> str:
    """``out of credit`` in the provider's words, and what the user can do about it."""
    said = said.strip().rstrip(".")
    head = f"out of credit ({said})" if said else "out of credit"
    return (
        f"{head}: add credit or allow extra usage with {provider}, then run "
        f"`llm-sidecar key reset --provider {provider}`; until then it is skipped, "
        "never removed"
    )


def _low_note(state: CredentialStatus) -> str:
    """`` · 6% left`` when the key in use is below 10 % of a window, else ''."""
    left = state.fraction_left
    return f" · {int(left * 100)}% left" if left is not None and left < LOW_FRACTION else ""


def provider_status(
    provider: str, creds: list[Credential], st: RotationState, now: float
) -> ProviderStatus:
    """What a status bar shows: ``🔑 1/3``, ``🔑 2/3 (rotated)``, or one credential's state."""
    pool = usable_pool(creds, st)
    in_pool = {c.state_key for c in pool}
    statuses = tuple(credential_state(c, st, now) for c in pool) + tuple(
        credential_state(c, st, now) for c in creds if c.state_key not in in_pool
    )
    size = len(pool)
    rotated = st.rotated and size > 1
    if size == 0:
        if creds:
            return ProviderStatus(
                provider,
                StatusKind.ERROR,
                "🔑 rejected",
                0,
                0,
                False,
                statuses,
                f"every {provider} credential was rejected",
            )
        return ProviderStatus(
            provider,
            StatusKind.INACTIVE,
            "🔑 no credentials",
            0,
            0,
            False,
            statuses,
            f"no {provider} credentials",
        )
    index = _current_index(pool, st)
    pool_states = statuses[:size]
    if size == 1:
        only = pool_states[0]
        kind, text = _single_text(only, now)
        if kind is StatusKind.NORMAL and (note := _low_note(only)):
            kind, text = StatusKind.WARNING, text + note
        return ProviderStatus(provider, kind, text, 1, 1, False, statuses, only.message)

    text = f"🔑 {index + 1}/{size}"
    kind = StatusKind.NORMAL
    message = None
    if all(s.state == "outOfCredit" for s in pool_states):
        kind = StatusKind.ERROR
        text += " (out of credit)"
        message = f"every {provider} key is out of credit; {pool_states[0].message}"
    elif all(s.state in ("coolingDown", "outOfCredit", "expired") for s in pool_states):
        kind = StatusKind.ERROR
        text += " (all rate limited)"
        soonest = min((s.cooldown_until for s in pool_states if s.cooldown_until), default=None)
        if soonest:
            message = f"every {provider} key is cooling down until {_clock_text(soonest)}"
    elif (model := _all_resting_for(pool_states)) is not None:
        # Every key rests for one model (per-model limits): requests for it wait, so
        # the status says so, though other models still answer.
        kind = StatusKind.ERROR
        text += " (all rate limited)"
        soonest = min(_resting_until(s, model) for s in pool_states if s.state != "expired")
        message = (
            f"every {provider} key is cooling down for {model} until {_clock_text(soonest)}; "
            "other models still answer"
        )
    elif rotated:
        kind = StatusKind.WARNING
        text += " (rotated)"
        message = f"rotated to key {index + 1} of {size}"
    elif any(s.state in ("expired", "expiring", "refused") for s in pool_states):
        kind = StatusKind.WARNING
    if kind is StatusKind.NORMAL and (note := _low_note(pool_states[index])):
        kind = StatusKind.WARNING
        text += note
    broke = [s for s in pool_states if s.state == "outOfCredit"]
    if broke and len(broke) < size:
        which = ", ".join(s.fingerprint for s in broke)
        note = f"{which} out of credit: skipped until topped up (`key reset` after)"
        message = f"{message}; {note}" if message else note
    refused = [s for s in pool_states if s.state == "refused"]
    if refused:
        # The status bar's tooltip shows this message: a key refused for its scope
        # is worth a word even while another key answers.
        which = ", ".join(s.fingerprint for s in refused)
        note = f"{which} refused for this use; {SCOPE_ADVICE}"
        message = f"{message}; {note}" if message else note
    return ProviderStatus(provider, kind, text, index + 1, size, rotated, statuses, message)


def changes_at(creds: list[Credential], st: RotationState, now: float) -> float:
    """The earliest time after ``now`` at which :func:`provider_status` of the same
    credentials and state may say something else (inf: never): a cooldown, a model's
    cooldown or a window ending, a credential expiring or entering its last day, the
    hours of "expires in 5h" ticking. Until then a status derived at ``now`` holds."""
    times = [c.until for c in st.cooldowns.values()]
    times += [c.until for models in st.model_cooldowns.values() for c in models.values()]
    times += [w.reset_at for k in st.headroom_keys() for w in st.windows(k) if w.reset_at]
    for cred in creds:
        if cred.expires_at is not None:
            left = cred.expires_at - now
            times += [cred.expires_at, cred.expires_at - EXPIRING_WITHIN, now + (left % 3600)]
    return min((t for t in times if t > now), default=float("inf"))


def _whole_rest(s: CredentialStatus) -> bool:
    return s.state in ("coolingDown", "outOfCredit", "expired")


def _all_resting_for(states: tuple[CredentialStatus, ...]) -> str | None:
    """A model every key rests for (a whole-key rest counts for every model); None if
    some key could serve each model."""
    common: set[str] | None = None
    for s in states:
        if _whole_rest(s):
            continue
        models = {m.model for m in s.model_cooldowns}
        common = models if common is None else common & models
        if not common:
            return None
    return min(common) if common else None


def _resting_until(s: CredentialStatus, model: str) -> float:
    if s.cooldown_until is not None:
        return s.cooldown_until
    return max((m.until for m in s.model_cooldowns if m.model == model), default=0.0)


def _single_text(only: CredentialStatus, now: float) -> tuple[StatusKind, str]:
    if only.state == "outOfCredit":
        return StatusKind.ERROR, "🔑 out of credit"
    if only.state == "coolingDown" and only.cooldown_until:
        return StatusKind.WARNING, f"🔑 rate limited until {_clock_text(only.cooldown_until)}"
    if only.state == "ok" and only.model_cooldowns:
        first = only.model_cooldowns[0]
        return StatusKind.WARNING, f"🔑 {first.model} rate limited until {_clock_text(first.until)}"
    if only.state == "expired":
        return StatusKind.ERROR, "🔑 expired"
    if only.state == "refused":
        return StatusKind.ERROR, "🔑 refused"
    if only.state == "expiring" and only.expires_at:
        hours = max(0, int((only.expires_at - now) // 3600))
        return StatusKind.WARNING, f"🔑 expires in {hours}h"
    return StatusKind.NORMAL, "🔑 ok"
