"""The rotation pool of every provider, backed by the store: which key answers, what an
outcome teaches, what the status bar shows.

This is what the server, the engine and the CLI call. Each method is one short
transaction on the store (or a lock-free read), applying the pure rules of
:mod:`sidecar.rotation.rules`. The credentials' own writes are in
:mod:`~sidecar.rotation.poolwrites`, the shared reading in
:mod:`~sidecar.rotation.poolbase`; this is the only module that records outcomes.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import attrs

from sidecar.catalog import get_provider
from sidecar.credentials import Credential
from sidecar.rotation import remote, rules
from sidecar.rotation.classify import Failure
from sidecar.rotation.headroom import Window, flags, model_scope
from sidecar.rotation.poolbase import TeamUsage, load_state, save_state
from sidecar.rotation.poolwrites import PoolWrites
from sidecar.rotation.rules import Action, Choice
from sidecar.rotation.state import RotationState, Usage
from sidecar.rotation.status import ProviderStatus, StatusKind, changes_at, provider_status
from sidecar.store import StoreData

__all__ = ["KeyPool"]

USAGE_SAVE_INTERVAL = 5.0  # seconds between writes of plain usage counts


@attrs.frozen
class _KeptStatus:
    status: ProviderStatus
    docs: tuple[object, ...]  # the store's parsed documents it was derived from
    key: object  # what else it depends on: unsaved windows, the team link, bad settings
    until: float  # when time alone may change it


class KeyPool(PoolWrites):
    def status(self, provider: str, data: StoreData | None = None) -> ProviderStatus:
        """``provider``'s status; without ``data``, the one derived last while the store's
        files, this process's unsaved windows and the team link are as they were then and
        no cooldown, window or expiry has run out since (see status.changes_at).

        Every handler, the status feed after each file change and every failover ask
        for it: at 1,000 keys deriving it took milliseconds each time.
        """
        if data is not None:
            return self._derive_status(provider, data)[0]
        docs = self.store.held()
        link = self.team.link if self.team is not None else None
        key = (dict(self._windows), tuple(self._unsaved), link, self.problems)
        if self.team_usage is not None:  # the team's counts change with no file written
            docs = None
        kept = self._statuses.get(provider)
        now = self.clock()
        if (
            docs is not None
            and kept is not None
            and now < kept.until
            and kept.key == key
            and _same(kept.docs, docs)
        ):
            return kept.status
        status, until = self._derive_status(provider, self.store.read())
        if docs is not None and _same(self.store.held(), docs):  # unchanged while derived
            self._statuses[provider] = _KeptStatus(status, docs, key, until)
        return status

    @functools.cached_property
    def _statuses(self) -> dict[str, _KeptStatus]:
        return {}

    def _derive_status(self, provider: str, data: StoreData) -> tuple[ProviderStatus, float]:
        """The status, and until when it holds (see status.changes_at)."""
        st = load_state(data, provider)
        for (_, scope), (cred, windows) in self._windows.items():
            # This process's latest windows and counts, not yet written: its status shows them.
            if cred.provider == provider:
                rules.record_headroom(st, cred, windows, scope)
        for cred, when in self._unsaved:
            if cred.provider == provider:
                rules.record_usage(st, cred, when)
        now = self.clock()
        creds = self.credentials(provider, data)
        status = provider_status(provider, creds, st, now)
        until = changes_at(creds, st, now)
        if self.team_usage is not None:
            status = _team_usage(status, creds, self.team_usage)
        if self.problems:
            said = "; ".join(p.message for p in self.problems)
            message = f"{said}; {status.message}" if status.message else said
            return attrs.evolve(status, kind=StatusKind.ERROR, message=message), until
        if self.team is not None and self.team.link == "offline":
            said = "team state offline: serving on this machine's state"
            message = f"{said}; {status.message}" if status.message else said
            kind = StatusKind.WARNING if status.kind is StatusKind.NORMAL else status.kind
            return attrs.evolve(status, kind=kind, message=message), until
        return status, until

    def status_all(self, providers: Iterable[str] | None = None) -> list[ProviderStatus]:
        names = list(providers) if providers is not None else self.providers()
        return [self.status(p) for p in names]

    # -- rotation ---------------------------------------------------------------

    @staticmethod
    def scope(provider: str, model: str | None) -> str | None:
        """The model scope per-model limits of ``provider`` share (see model_scope)."""
        return model_scope(get_provider(provider).api, model)

    def acquire(self, provider: str, skip: Iterable[str] = (), model: str | None = None) -> Choice:
        """The credential the next request (for ``model``) goes out on.

        Read without the lock first: only a rotation changes the state, and
        only then is it written, inside a transaction that re-checks it.
        """
        scope = self.scope(provider, model)
        skip = tuple(skip)
        choice = self._unrotated_choice(provider, self.store.read(), skip, scope)
        if choice is not None:
            return choice
        with self._state_of(provider) as (data, st):
            pool = self.pool(provider, data)
            return rules.choose(provider, pool, st, self.clock(), skip, scope)

    def acquire_cached(
        self, provider: str, skip: Iterable[str] = (), model: str | None = None
    ) -> Choice | None:
        """What :meth:`acquire` would choose, when the store's files are as last parsed
        and the choice changes no state: nothing to read, lock or write, so an event
        loop may ask without a thread. None: ask acquire() (in a thread)."""
        scope = self.scope(provider, model)
        data = self.store.peek()
        return None if data is None else self._unrotated_choice(provider, data, tuple(skip), scope)

    def _unrotated_choice(
        self, provider: str, data: StoreData, skip: tuple[str, ...], scope: str | None
    ) -> Choice | None:
        """The choice on ``data`` if it needs no rotation written; None if it does."""
        st = load_state(data, provider)
        before = (st.current, st.rotated)
        choice = rules.choose(provider, self.pool(provider, data), st, self.clock(), skip, scope)
        return choice if (st.current, st.rotated) == before else None

    def report_failure(
        self, cred: Credential, failure: Failure, model: str | None = None
    ) -> Action:
        """Record a failure of ``cred`` (on a request for ``model``); an invalid pooled key
        leaves the pool file."""
        scope = self.scope(cred.provider, model)
        self._count(cred, failures=1)
        with self._state_of(cred.provider) as (data, st):
            pool = self.pool(cred.provider, data)
            action = rules.record_failure(pool, st, cred, failure, self.clock(), scope)
            if action is Action.RETRY and cred.state_key in st.rejected:
                # Eviction drops the verdict from the state: the team hears of it first.
                verdict = {"rejected": {cred.state_key: st.rejected[cred.state_key].to_doc()}}
                self._share(data, cred.provider, {}, verdict)
                self._evict(data, st, cred)
        return action

    def reject(self, cred: Credential, message: str) -> None:
        """Take ``cred`` out of rotation, e.g. a login whose refresh failed for good."""
        with self._state_of(cred.provider) as (data, st):
            rules.reject(self.pool(cred.provider, data), st, cred, message, self.clock())

    def _evict(self, data: StoreData, st: RotationState, cred: Credential) -> None:
        # Pool entries are removed from the pool file; profiles and environment
        # keys cannot be deleted behind the user's back, so they stay marked
        # rejected in the state until `keyReset` or the user replaces them.
        if cred.source == "pool":
            data.remove_from_pool(cred.provider, cred.id)
            st.rejected.pop(cred.state_key, None)

    def report_success(
        self, cred: Credential, *, model: str | None = None, windows: Iterable[Window] = ()
    ) -> None:
        """Record a success (of a request for ``model``) and the windows its answer reported.

        A visible change (clearing "(rotated)", a new current credential, the end of a
        cooldown, a window spent or fallen below 10 %) is written at once: every process
        must skip a spent key before it earns a 429. Plain usage counts and headroom
        figures are kept in memory and written with the next change or every few
        seconds, so the hot path does not pay an fsync per request; a crash loses only
        those.
        """
        now = self.clock()
        scope = self.scope(cred.provider, model)
        windows = tuple(windows)
        self._count(cred, requests=1)
        if self._success_shows(cred, scope, windows, now):
            with self._state_of(cred.provider) as (data, st):
                self._write_unsaved_usage(data, (cred.provider, st))  # older news first
                rules.record_success(st, cred, now, scope)
                rules.record_headroom(st, cred, windows, scope)
        else:
            self._unsaved.append((cred, now))
            if windows:
                self._windows[(cred.state_key, scope)] = (cred, windows)
            if now - self._saved_at >= USAGE_SAVE_INTERVAL:
                self.save_usage()

    def success_writes(
        self, cred: Credential, *, model: str | None = None, windows: Iterable[Window] = ()
    ) -> bool:
        """Whether :meth:`report_success` of the same would write the store at once (a
        visible change), so that an event loop calls it in a thread; otherwise it only
        keeps the news in memory, and may be called on the loop. Answered from the
        parsed store when no file changed (no disk read)."""
        scope = self.scope(cred.provider, model)
        now = self.clock()
        # Or the counts kept in memory are due to be written with it.
        due = now - self._saved_at >= USAGE_SAVE_INTERVAL
        return due or self._success_shows(cred, scope, tuple(windows), now)

    def _success_shows(
        self, cred: Credential, scope: str | None, windows: tuple[Window, ...], now: float
    ) -> bool:
        data = self.store.peek()  # after every answer: from memory when nothing changed
        st = load_state(data if data is not None else self.store.read(), cred.provider)
        key = cred.state_key
        return (
            st.rotated
            or st.current != key
            or key in st.cooldowns
            or (key in st.model_cooldowns and (scope is None or scope in st.model_cooldowns[key]))
            or _headroom_turns(st, cred, windows, scope, now)
        )

    def save_usage(self) -> None:
        """Write the usage counts and headroom kept in memory (also called at shutdown)."""
        if self._unsaved or self._windows:
            with self.store.transaction() as data:
                self._write_unsaved_usage(data)

    def _write_unsaved_usage(
        self, data: StoreData, held: tuple[str, RotationState] | None = None
    ) -> None:
        # Counts and windows only: replaying a success here must not undo a later
        # rotation. ``held`` is (provider, state) the caller is editing and writes back.
        states = dict([held]) if held is not None else {}
        before: dict[str, remote.Snapshot | None] = {}

        def state_of(provider: str) -> RotationState:
            st = states.get(provider)
            if st is None:
                # The windows written here are the team's news: compared with before.
                before[provider] = self._before_write(data, provider)
                st = states[provider] = load_state(data, provider)
            return st

        # Taken at once: report_success may run in a thread (a visible change) while the
        # loop keeps adding news of other streams, which must wait for the next write.
        unsaved, self._unsaved = self._unsaved, []
        windows, self._windows = self._windows, {}
        for cred, when in unsaved:
            rules.record_usage(state_of(cred.provider), cred, when)
        for (_, scope), (cred, reported) in windows.items():
            rules.record_headroom(state_of(cred.provider), cred, reported, scope)
        for provider, st in states.items():
            if held is None or provider != held[0]:
                save_state(data, provider, st)
                self._share(data, provider, before.get(provider))
        self._saved_at = self.clock()

    def reset(self, provider: str) -> None:
        get_provider(provider)
        # Windows held in memory are forgotten too; the usage counts stay.
        self._windows = {k: v for k, v in self._windows.items() if v[0].provider != provider}
        with self._state_of(provider) as (data, st):
            rules.reset(st)
            if self.team is not None:  # the user's word: the whole team tries again
                self.team.forget(provider, self.credentials(provider, data))


def _team_usage(status: ProviderStatus, creds: list[Credential], team: TeamUsage) -> ProviderStatus:
    """``status`` with each shared credential's usage the team's sum, while it is known."""
    by_id = {c.id: c for c in creds}
    shown = []
    for c in status.credentials:
        counts = team.usage_of(by_id[c.id]) if c.id in by_id else None
        if counts is not None:
            usage = Usage(counts.requests, counts.failures, counts.last_used)
            c = attrs.evolve(c, usage=usage, counted="team")
        shown.append(c)
    return attrs.evolve(status, credentials=tuple(shown))


def _same(a: tuple[object, ...] | None, b: tuple[object, ...] | None) -> bool:
    """The same parsed documents: compared by identity, as comparing them would cost
    what the cache saves."""
    return (
        a is not None
        and b is not None
        and len(a) == len(b)
        and all(x is y for x, y in zip(a, b, strict=True))
    )


def _headroom_turns(
    st: RotationState, cred: Credential, windows: tuple[Window, ...], scope: str | None, now: float
) -> bool:
    """Whether ``windows`` change what others must see at once: a window now spent (or no
    longer), or the key's lowest window crossing the 10 % warning. The new report covers
    this request's model (and the account): it is held against the written windows of
    that scope, with no merge needed."""
    if not windows:
        return False
    return flags(st.windows(cred.state_key), scope, now) != flags(windows, None, now)
