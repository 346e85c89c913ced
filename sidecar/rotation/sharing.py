"""The key pool as a team's link sees it: what to share, and where a teammate's entry goes.

Unlike :mod:`~sidecar.rotation.remote` (the pure merge rule) this reads and writes the
store, through the pool's own state helpers, as :class:`sidecar.team.LocalState`.
Logins are never shared: an OAuth login is one person's subscription.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sidecar.credentials import Credential
from sidecar.errors import SidecarError
from sidecar.rotation import remote, rules
from sidecar.rotation.keypool import KeyPool
from sidecar.rotation.poolbase import load_state, save_state
from sidecar.rotation.state import RotationState
from sidecar.store import StoreData

if TYPE_CHECKING:
    from sidecar.team import Entry, Link, TeamConfig, TeamSync

__all__ = ["SharedPool", "start_sharing"]


class SharedPool:
    def __init__(self, keypool: KeyPool) -> None:
        self.keypool = keypool

    def team_credentials(self) -> list[Credential]:
        pool = self.keypool
        data = pool.store.read()
        return [
            c for p in pool.providers(data) for c in pool.credentials(p, data) if c.kind != "oauth"
        ]

    def team_entries(self) -> list[tuple[Credential, Entry]]:
        pool = self.keypool
        data = pool.store.read()
        return [
            item
            for provider in pool.providers(data)
            for item in pool.shared_changes(
                provider, pool.credentials(provider, data), {}, load_state(data, provider).to_doc()
            )
        ]

    def merge_remote(self, section: str, cred: Credential, doc: dict[str, Any]) -> bool:
        """Merge an entry another machine of the team saw; it is never shared back."""
        store, now = self.keypool.store, self.keypool.clock()
        current = load_state(store.read(), cred.provider)
        if not remote.merge_entry(current, section, cred.state_key, doc, now):
            return False  # read without the lock first: most entries are known already
        with store.transaction() as data:
            st = load_state(data, cred.provider)
            changed = remote.merge_entry(st, section, cred.state_key, doc, now)
            if changed:
                # As if this machine had seen it: move off a key that now rests, so
                # every status bar of the team shows the same rotation.
                scope = doc.get("scope") if section == "modelCooldowns" else None
                pool = self.keypool.pool(cred.provider, data)
                with contextlib.suppress(SidecarError):  # none usable: status says so
                    rules.choose(cred.provider, pool, st, now, (), scope)
                save_state(data, cred.provider, st)
        return changed

    def merge_position(self, cred: Credential, doc: dict[str, Any]) -> bool:
        """A teammate moved to ``cred`` under sticky: it is this machine's key too, when
        this machine keeps sticky and may use it (see docs/teams.md)."""
        store, now = self.keypool.store, self.keypool.clock()
        if self._moves(store.read(), cred, now) is None:
            return False  # read without the lock first: usually on it already
        with store.transaction() as data:
            st = self._moves(data, cred, now)
            if st is not None:
                st.current, st.rotated = cred.state_key, doc.get("rotated") is True
                save_state(data, cred.provider, st)
        return st is not None

    def _moves(self, data: StoreData, cred: Credential, now: float) -> RotationState | None:
        """The state that would move to ``cred``; None if it stays where it is."""
        st = load_state(data, cred.provider)
        if st.policy != "sticky" or st.current == cred.state_key:
            return None
        usable = {c.state_key for c in self.keypool.pool(cred.provider, data)}
        if cred.state_key not in usable or rules.blocked(st, cred, None, now):
            return None
        return st

    def forget_remote(self, cred: Credential) -> None:
        """A teammate reset this credential: what the team saw of it is forgotten here too."""
        with self.keypool.store.transaction() as data:
            st = load_state(data, cred.provider)
            for section in (st.cooldowns, st.model_cooldowns, st.rejected):
                section.pop(cred.state_key, None)
            save_state(data, cred.provider, st)


def start_sharing(
    keypool: KeyPool, config: TeamConfig | None, on_link: Callable[[Link], object]
) -> TeamSync | None:
    """Link the pool to the team's state ``config`` names (none: None); on a running loop."""
    if config is None:
        return None
    from sidecar.team import TeamSync

    sync = TeamSync(config, SharedPool(keypool), on_link=on_link)
    keypool.team = keypool.team_usage = sync
    sync.start()
    return sync
