"""The key pool's foundation: the store it reads, the credentials in rotation order, and
the transactions every writer goes through.

Unlike :mod:`~sidecar.rotation.keypool` (rotation: acquire, outcomes, status) and
:mod:`~sidecar.rotation.poolwrites` (credentials added, saved, removed, renewed), this
holds only what both need: reading a provider's credentials and its typed state, and
writing that state back inside the store's lock.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from sidecar.catalog import PROVIDERS
from sidecar.credentials import Credential
from sidecar.rotation import placement, remote, rules
from sidecar.rotation.headroom import Window
from sidecar.rotation.state import RotationState
from sidecar.sources import env_credentials
from sidecar.store import Store, StoreData

if TYPE_CHECKING:
    from sidecar.settings import Problem
    from sidecar.team import Counts, Entry, TeamSync

__all__ = ["Clock", "PoolBase", "TeamUsage", "find_login", "forget", "load_state", "save_state"]

Clock = Callable[[], float]


class TeamUsage(Protocol):
    """Where status reads a team's usage counts: the link, or what a command read once."""

    def usage_of(self, cred: Credential) -> Counts | None:
        """The team's counts of ``cred``; None: only this machine's are known."""


class PoolBase:
    def __init__(
        self,
        store: Store,
        env: Mapping[str, str],
        clock: Clock = time.time,
        *,
        problems: Sequence[Problem] = (),
    ) -> None:
        """``env``: where keys in the environment are found (a face passes
        :attr:`sidecar.settings.Settings.env`); ``problems``: the bad settings every status
        shows as an Error (the server's half of the policy; the other faces refuse to start)."""
        self.store = store
        self.env = env
        self.problems = tuple(problems)
        self.clock = clock
        self._unsaved: list[tuple[Credential, float]] = []  # successes not yet written
        # The latest windows not yet written, by (credential, model scope): only the
        # latest report of a window matters, so memory stays one entry per key and model.
        self._windows: dict[tuple[str, str | None], tuple[Credential, tuple[Window, ...]]] = {}
        self._saved_at = clock()
        # The team's shared state (sidecar.team), when the face that built us started a
        # link: told of every cooldown, rejection and window this machine writes.
        self.team: TeamSync | None = None
        # Where status reads the team's usage counts (the link, or a command's one read);
        # None: this machine's own.
        self.team_usage: TeamUsage | None = None

    # -- reading ----------------------------------------------------------------

    def credentials(self, provider: str, data: StoreData | None = None) -> list[Credential]:
        """Every credential of ``provider`` in rotation order, rejected ones included."""
        data = data or self.store.read()
        env = env_credentials(provider, self.env)
        if env.live_override:
            return env.credentials
        return rules.order_credentials(
            data.order(provider), data.pool(provider), data.profiles(provider), env.credentials
        )

    def pool(self, provider: str, data: StoreData | None = None) -> list[Credential]:
        """The credentials rotation may use: all but the rejected ones."""
        data = data or self.store.read()
        return rules.usable_pool(self.credentials(provider, data), load_state(data, provider))

    def providers(self, data: StoreData | None = None) -> list[str]:
        """Providers that have any credential, stored or in the environment."""
        data = data or self.store.read()
        names = data.stored_providers()
        names.update(p for p in PROVIDERS if env_credentials(p, self.env).credentials)
        return [p for p in PROVIDERS if p in names]

    def state(self, provider: str, data: StoreData | None = None) -> RotationState:
        """A typed copy of ``provider``'s shared rotation state."""
        return load_state(data or self.store.read(), provider)

    def known_secrets(self) -> list[str]:
        """Every secret the pool holds, for the log filter to redact."""
        try:
            data = self.store.read()
            creds = [c for p in self.providers(data) for c in self.credentials(p, data)]
        except Exception:  # logging must not fail because the store cannot be read
            return []
        return [s for c in creds for s in (c.secret, c.refresh) if s]

    # -- writing credentials -------------------------------------------------------
    #
    # Every write of a credential (key add, key add --login, a login, a pasted token,
    # an import) goes through _writing and _fresh_start: the new credential goes after
    # the one in use (see sidecar.rotation.placement), and whatever the provider said about an
    # earlier copy of it (rejected, cooling down, refused) is forgotten, since the user
    # has just given it again.

    @contextlib.contextmanager
    def _writing(self, provider: str) -> Iterator[StoreData]:
        with self.store.transaction() as data:
            before = self.pool(provider, data)
            yield data
            st = load_state(data, provider)
            where = placement.keep_in_use(
                before, self.credentials(provider, data), self.pool(provider, data), st
            )
            if where.order is not None:
                data.set_order(provider, where.order)
            if where.current != st.current:
                st.current = where.current
                save_state(data, provider, st)

    @staticmethod
    def _fresh_start(data: StoreData, cred: Credential) -> None:
        st = load_state(data, cred.provider)
        st.forget_verdicts(cred.state_key)
        save_state(data, cred.provider, st)

    @contextlib.contextmanager
    def _state_of(self, provider: str) -> Iterator[tuple[StoreData, RotationState]]:
        """One provider's typed state inside a store transaction, written back at the end;
        what changed of its shared parts goes to the team's link."""
        with self.store.transaction() as data:
            # Before load_state: the typed state edits the headroom section in place.
            before = self._before_write(data, provider)
            st = load_state(data, provider)
            yield data, st
            save_state(data, provider, st)
            self._share(data, provider, before)

    def _count(self, cred: Credential, *, requests: int = 0, failures: int = 0) -> None:
        """A request of ``cred`` answered or failed: the team's counters add it too."""
        if self.team is not None:
            self.team.count(cred, requests, failures, self.clock())

    def _before_write(self, data: StoreData, provider: str) -> remote.Snapshot | None:
        """What ``_share`` compares a write with; None when no team is linked."""
        return remote.snapshot(data.provider_state(provider)) if self.team is not None else None

    def _share(
        self,
        data: StoreData,
        provider: str,
        before: remote.Snapshot | None,
        after: Mapping[str, Any] | None = None,
    ) -> None:
        """Hand the team's link what a write changed of ``provider``'s shared state:
        ``after`` (default: the state as written) against ``before`` (its snapshot)."""
        if self.team is None or before is None:
            return
        after = data.provider_state(provider) if after is None else after
        creds = self.credentials(provider, data)
        for cred, entry in self.shared_changes(provider, creds, before, after):
            self.team.publish(cred, entry)
        current = after.get("current")
        if current != before.get("current") and after.get("policy", "sticky") == "sticky":
            # Under sticky the key in use is the team's: a machine that moved tells the
            # others (see docs/teams.md), and a reset (None) is back to the first key for
            # all. Under primary the first usable key is the position: nothing to tell.
            now_on = next((c for c in creds if c.state_key == current), None)
            if now_on is None and current is None and creds:
                now_on = creds[0]
            if now_on is not None:
                self.team.position(creds, now_on, after.get("rotated") is True, self.clock())

    def shared_changes(
        self,
        provider: str,
        creds: list[Credential],
        before: Mapping[str, Any],
        after: Mapping[str, Any],
    ) -> list[tuple[Credential, Entry]]:
        """The entries of ``provider`` a team shares that ``after`` holds anew since
        ``before`` (see :func:`sidecar.rotation.remote.changed_entries`)."""
        from sidecar.team import Entry

        changed = remote.changed_entries(before, after, self.clock())
        if not changed:
            return []
        by_key = {c.state_key: c for c in creds}
        return [
            (by_key[key], Entry(provider, section, scope, shared.doc, shared.order, shared.until))
            for (section, key, scope), shared in changed.items()
            if key in by_key and by_key[key].kind != "oauth"
        ]


def forget(data: StoreData, cred: Credential) -> None:
    """Drop the rotation state of a credential that left the store."""
    st = load_state(data, cred.provider)
    st.forget(cred.state_key)
    save_state(data, cred.provider, st)


def load_state(data: StoreData, provider: str) -> RotationState:
    """A typed copy of one provider's state: reading it never changes the store's data."""
    return RotationState.from_doc(data.provider_state(provider))


def save_state(data: StoreData, provider: str, st: RotationState) -> None:
    doc = data.provider_state(provider)
    new = st.to_doc()
    if doc != new:
        doc.clear()
        doc.update(new)


def find_login(data: StoreData, cred: Credential) -> Credential | None:
    """The stored copy of the login ``cred`` was read from, wherever it lives now.

    By id first; then by token, for a profile that ``keyAdd`` moved into the pool
    since ``cred`` was read.
    """
    pool, profiles = data.pool(cred.provider), data.profiles(cred.provider)
    same_place = pool if cred.source == "pool" else profiles
    for stored in same_place:
        if stored.id == cred.id and stored.kind == "oauth":
            return stored
    for stored in (*pool, *profiles):
        if stored.kind == "oauth" and (
            stored.secret == cred.secret or (cred.refresh and stored.refresh == cred.refresh)
        ):
            return stored
    return None
