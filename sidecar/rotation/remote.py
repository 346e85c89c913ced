"""What another machine of the team saw, merged into this machine's rotation state.

Unlike :mod:`~sidecar.rotation.rules` (what an outcome of our own request does) this
takes an entry read from the team's shared state (:mod:`sidecar.team`), which is
untrusted input: parsed defensively, and only ever making a credential rest longer.
A cooldown known on either side is kept until the later end; a rejection is kept.
"""

from __future__ import annotations

from typing import Any

from sidecar.rotation.state import Cooldown, RotationState, Verdict

__all__ = ["merge_entry", "shared_entries"]


def shared_entries(st: RotationState, now: float) -> dict[tuple[str, str], dict[str, Any]]:
    """The entries a team shares, by (section, state key): live cooldowns and rejections."""
    entries: dict[tuple[str, str], dict[str, Any]] = {}
    for key, cooldown in st.cooldowns.items():
        if cooldown.until > now:
            entries["cooldowns", key] = cooldown.to_doc()
    for key, verdict in st.rejected.items():
        entries["rejected", key] = verdict.to_doc()
    return entries


def merge_entry(
    st: RotationState, section: str, state_key: str, entry: dict[str, Any], now: float
) -> bool:
    """Merge one shared entry into ``st``; whether anything changed."""
    if section == "cooldowns":
        theirs = Cooldown.from_doc(entry)
        ours = st.cooldowns.get(state_key)
        if theirs.until <= now or (ours is not None and ours.until >= theirs.until):
            return False
        if ours is not None:
            theirs.failures = max(theirs.failures, ours.failures)
        st.cooldowns[state_key] = theirs
        return True
    if section == "rejected":
        if state_key in st.rejected:
            return False
        st.rejected[state_key] = Verdict.from_doc(entry)
        return True
    return False
