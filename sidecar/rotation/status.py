"""What a status bar shows for a provider and each of its credentials: state and text.

Unlike :mod:`sidecar.rotation.rules`, which decides, this only describes: it reads one
provider's state (never changes it) and says ``🔑 2/3 (rotated)``, ``🔑 rate limited
until 14:05:00`` or why a credential is out.
"""

from __future__ import annotations

import enum
from typing import Literal

import attrs

from sidecar.credentials import Credential
from sidecar.rotation.rules import (
    SCOPE_ADVICE,
    _clock_text,
    _cooldown_until,
    _current_index,
    _is_expired,
    usable_pool,
)
from sidecar.rotation.state import RotationState

__all__ = [
    "EXPIRING_WITHIN",
    "CredentialStatus",
    "ProviderStatus",
    "StatusKind",
    "credential_state",
    "provider_status",
]

EXPIRING_WITHIN = 24 * 3600.0  # a credential expiring sooner than this is "expiring"

State = Literal["ok", "expiring", "expired", "coolingDown", "rejected", "refused"]


class StatusKind(enum.Enum):
    NORMAL = "Normal"
    WARNING = "Warning"
    ERROR = "Error"
    INACTIVE = "Inactive"


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
    rejected = st.rejected.get(cred.state_key)
    refused = st.refused.get(cred.state_key)
    until = _cooldown_until(st, cred)
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
    elif until > now:
        state = "coolingDown"
        message = st.cooldowns[cred.state_key].message or None
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
    )


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
        return ProviderStatus(provider, kind, text, 1, 1, False, statuses, only.message)

    text = f"🔑 {index + 1}/{size}"
    kind = StatusKind.NORMAL
    message = None
    if all(s.state in ("coolingDown", "expired") for s in pool_states):
        kind = StatusKind.ERROR
        text += " (all rate limited)"
        soonest = min((s.cooldown_until for s in pool_states if s.cooldown_until), default=None)
        if soonest:
            message = f"every {provider} key is cooling down until {_clock_text(soonest)}"
    elif rotated:
        kind = StatusKind.WARNING
        text += " (rotated)"
        message = f"rotated to key {index + 1} of {size}"
    elif any(s.state in ("expired", "expiring", "refused") for s in pool_states):
        kind = StatusKind.WARNING
    refused = [s for s in pool_states if s.state == "refused"]
    if refused:
        # The status bar's tooltip shows this message: a key refused for its scope
        # is worth a word even while another key answers.
        which = ", ".join(s.fingerprint for s in refused)
        note = f"{which} refused for this use; {SCOPE_ADVICE}"
        message = f"{message}; {note}" if message else note
    return ProviderStatus(provider, kind, text, index + 1, size, rotated, statuses, message)


def _single_text(only: CredentialStatus, now: float) -> tuple[StatusKind, str]:
    if only.state == "coolingDown" and only.cooldown_until:
        return StatusKind.WARNING, f"🔑 rate limited until {_clock_text(only.cooldown_until)}"
    if only.state == "expired":
        return StatusKind.ERROR, "🔑 expired"
    if only.state == "refused":
        return StatusKind.ERROR, "🔑 refused"
    if only.state == "expiring" and only.expires_at:
        hours = max(0, int((only.expires_at - now) // 3600))
        return StatusKind.WARNING, f"🔑 expires in {hours}h"
    return StatusKind.NORMAL, "🔑 ok"
