"""What another machine of the team saw, merged into this machine's rotation state.

Unlike :mod:`~sidecar.rotation.rules` (what an outcome of our own request does) this
reads entries from the team's shared state (:mod:`sidecar.team`), which is untrusted
input: parsed defensively, and only ever making a credential rest longer or its
headroom newer. A cooldown known on either side is kept until the later end; a
rejection is kept; of each rate-limit window the latest report wins.

The shared entries of one provider, by (section, state key, model scope):

* ``cooldowns``: a rest of the whole credential (billing, an account-wide window);
* ``modelCooldowns``: a rest of its requests for one model scope;
* ``rejected``: the provider refused it as invalid;
* ``headroom``: the latest windows it reported (limit, remaining, reset).

Each carries an ``order`` (a later one replaces an earlier one: a cooldown's end, a
rejection's time, the newest window's report) and when it stops mattering.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from sidecar.rotation.headroom import Window
from sidecar.rotation.rules import merge_windows
from sidecar.rotation.state import Cooldown, RotationState, Verdict

__all__ = ["SECTIONS", "Shared", "Snapshot", "changed_entries", "merge_entry", "snapshot"]

SECTIONS = ("cooldowns", "modelCooldowns", "rejected", "headroom")
REJECTED_FOR = 30 * 86400  # a rejection is shared this long
HEADROOM_FOR = 3600  # windows without a reset time are shared this long
# What a teammate's entry may ask at most: a damaged or hostile entry cannot park a key
# for longer than this.
MAX_REMOTE_COOLDOWN = 7 * 86400

Key = tuple[str, str, str | None]  # (section, state key, model scope)
Snapshot = dict[str, Any]  # see snapshot()


@attrs.frozen
class Shared:
    doc: dict[str, Any]
    order: float  # of two entries under one name, the greater is kept
    until: float  # epoch: after this the entry says nothing


def snapshot(doc: Mapping[str, Any]) -> Snapshot:
    """The shared parts of one provider's state document before a write: each section
    copied one level deep (a write replaces a credential's entry, never edits it in
    place; the headroom section itself is edited), and the current credential."""
    taken: Snapshot = {n: dict(s) if isinstance(s := doc.get(n), dict) else {} for n in SECTIONS}
    taken["current"] = doc.get("current")
    return taken


def changed_entries(
    before: Mapping[str, Any], after: Mapping[str, Any], now: float
) -> dict[Key, Shared]:
    """The live entries a team shares that ``after`` (a provider's state document, as
    written) holds anew since ``before`` (its :func:`snapshot`; ``{}``: all of them).

    Only what a write changed is read: a section equal to before costs one comparison,
    and of a changed one only the changed credentials' entries are parsed."""
    entries: dict[Key, Shared] = {}
    for section in SECTIONS:
        new = after.get(section)
        old = before.get(section) or {}
        if not isinstance(new, dict) or new == old:
            continue
        for key, value in new.items():
            if isinstance(key, str) and value != old.get(key):
                entries.update(_entries_of(section, key, value, old.get(key), now))
    return entries


def _entries_of(section: str, key: str, value: Any, old: Any, now: float) -> dict[Key, Shared]:
    if section == "cooldowns":
        cooldown = Cooldown.from_doc(value)
        if cooldown.until <= now:
            return {}
        return {(section, key, None): Shared(cooldown.to_doc(), cooldown.until, cooldown.until)}
    if section == "modelCooldowns":
        if not isinstance(value, dict):
            return {}
        old = old if isinstance(old, dict) else {}
        found: dict[Key, Shared] = {}
        for scope, doc in value.items():
            cooldown = Cooldown.from_doc(doc)
            if isinstance(scope, str) and doc != old.get(scope) and cooldown.until > now:
                shared = {**cooldown.to_doc(), "scope": scope}
                found[section, key, scope] = Shared(shared, cooldown.until, cooldown.until)
        return found
    if section == "rejected":
        verdict = Verdict.from_doc(value)
        return {(section, key, None): Shared(verdict.to_doc(), verdict.at, now + REJECTED_FOR)}
    # headroom: one compact JSON string per credential (see RotationState)
    windows = RotationState(headroom_raw={key: value}).windows(key)
    if not windows:
        return {}
    seen = max(w.seen_at for w in windows)
    resets = [w.reset_at for w in windows if w.reset_at is not None]
    until = max(resets) if resets and max(resets) > now else now + HEADROOM_FOR
    doc = {"windows": [w.to_doc() for w in windows]}
    return {(section, key, None): Shared(doc, seen, until)}


def merge_entry(
    st: RotationState, section: str, state_key: str, doc: dict[str, Any], now: float
) -> bool:
    """Merge one shared entry into ``st``; whether anything changed."""
    if section in ("cooldowns", "modelCooldowns"):
        theirs = Cooldown.from_doc(doc)
        theirs.until = min(theirs.until, now + MAX_REMOTE_COOLDOWN)
        if section == "cooldowns":
            held = st.cooldowns
        else:
            scope = doc.get("scope")
            if not isinstance(scope, str) or not scope:
                return False
            held = st.model_cooldowns.setdefault(state_key, {})
            state_key = scope
        ours = held.get(state_key)
        if theirs.until <= now or (ours is not None and ours.until >= theirs.until):
            return False
        if ours is not None:
            theirs.failures = max(theirs.failures, ours.failures)
        held[state_key] = theirs
        return True
    if section == "rejected":
        if state_key in st.rejected:
            return False
        st.rejected[state_key] = Verdict.from_doc(doc)
        return True
    if section == "headroom":
        raw = doc.get("windows")
        windows = [w for w in map(Window.from_doc, raw)] if isinstance(raw, list) else []
        return merge_windows(st, state_key, (w for w in windows if w is not None))
    return False
