"""The rotation pool of every provider, backed by the store.

This is what the server, the engine and the CLI call. Each method is one
short transaction on the store (or a lock-free read), applying the pure rules
of :mod:`sidecar.rotation.rules`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Literal

import attrs

from sidecar.catalog import PROVIDERS, get_provider
from sidecar.credentials import Credential
from sidecar.errors import InvalidParams
from sidecar.profiles import check_profile_id
from sidecar.rotation import placement, rules
from sidecar.rotation.classify import Failure
from sidecar.rotation.rules import Action, Choice
from sidecar.rotation.state import RotationState
from sidecar.rotation.status import ProviderStatus, StatusKind, provider_status
from sidecar.settings import Settings
from sidecar.sources import env_credentials, kind_of_secret
from sidecar.store import Store, StoreData

__all__ = ["KeyPool"]

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Saved = Literal["added", "updated", "unchanged"]
MAX_KEY_LENGTH = 4096  # real keys and tokens are a few hundred characters at most
USAGE_SAVE_INTERVAL = 5.0  # seconds between writes of plain usage counts


class KeyPool:
    def __init__(
        self,
        store: Store,
        environ: Mapping[str, str] | None = None,
        clock: Clock = time.time,
        *,
        settings: Settings | None = None,
    ) -> None:
        """``settings`` as the process built them; else read from ``environ`` (os.environ)."""
        self.store = store
        if settings is None:
            settings = Settings.load(store.home, os.environ if environ is None else environ)
            for problem in settings.problems:
                # The server's half of the policy (sidecar.settings): a log line here and
                # an Error in every status (see status()). The CLI and the gateway load
                # their settings themselves and refuse to start instead.
                log.error("%s: using the default", problem.message)
        self.settings = settings
        self.clock = clock
        self._unsaved: list[tuple[Credential, float]] = []  # successes not yet written
        self._saved_at = clock()

    @property
    def env(self) -> Mapping[str, str]:
        """The environment provider variables are looked up in (see Settings.env)."""
        return self.settings.env

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
        return rules.usable_pool(self.credentials(provider, data), _state(data, provider))

    def providers(self, data: StoreData | None = None) -> list[str]:
        """Providers that have any credential, stored or in the environment."""
        data = data or self.store.read()
        names = data.stored_providers()
        names.update(p for p in PROVIDERS if env_credentials(p, self.env).credentials)
        return [p for p in PROVIDERS if p in names]

    def known_secrets(self) -> list[str]:
        """Every secret the pool holds, for the log filter to redact."""
        try:
            data = self.store.read()
            creds = [c for p in self.providers(data) for c in self.credentials(p, data)]
        except Exception:  # logging must not fail because the store cannot be read
            return []
        return [s for c in creds for s in (c.secret, c.refresh) if s]

    def status(self, provider: str, data: StoreData | None = None) -> ProviderStatus:
        data = data or self.store.read()
        status = provider_status(
            provider,
            self.credentials(provider, data),
            _state(data, provider),
            self.clock(),
        )
        if not self.settings.problems:
            return status
        said = "; ".join(p.message for p in self.settings.problems)
        message = f"{said}; {status.message}" if status.message else said
        return attrs.evolve(status, kind=StatusKind.ERROR, message=message)

    def status_all(self, providers: Iterable[str] | None = None) -> list[ProviderStatus]:
        data = self.store.read()
        names = list(providers) if providers is not None else self.providers(data)
        return [self.status(p, data) for p in names]

    # -- rotation ---------------------------------------------------------------

    def acquire(self, provider: str, skip: Iterable[str] = ()) -> Choice:
        """The credential the next request goes out on.

        Read without the lock first: only a rotation changes the state, and
        only then is it written, inside a transaction that re-checks it.
        """
        get_provider(provider)
        skip = tuple(skip)
        choice = self._unrotated_choice(provider, self.store.read(), skip)
        if choice is not None:
            return choice
        with self._state_of(provider) as (data, st):
            return rules.choose(provider, self.pool(provider, data), st, self.clock(), skip)

    def acquire_cached(self, provider: str, skip: Iterable[str] = ()) -> Choice | None:
        """What :meth:`acquire` would choose, when the store's files are as last parsed
        and the choice changes no state: nothing to read, lock or write, so an event
        loop may ask without a thread. None: ask acquire() (in a thread)."""
        get_provider(provider)
        data = self.store.peek()
        return None if data is None else self._unrotated_choice(provider, data, tuple(skip))

    def _unrotated_choice(
        self, provider: str, data: StoreData, skip: tuple[str, ...]
    ) -> Choice | None:
        """The choice on ``data`` if it needs no rotation written; None if it does."""
        st = _state(data, provider)
        before = (st.current, st.rotated)
        choice = rules.choose(provider, self.pool(provider, data), st, self.clock(), skip)
        return choice if (st.current, st.rotated) == before else None

    def report_failure(self, cred: Credential, failure: Failure) -> Action:
        """Record a failure of ``cred``; an invalid pooled key leaves the pool file."""
        with self._state_of(cred.provider) as (data, st):
            pool = self.pool(cred.provider, data)
            action = rules.record_failure(pool, st, cred, failure, self.clock())
            if action is Action.RETRY and cred.state_key in st.rejected:
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

    def report_success(self, cred: Credential) -> None:
        """Record a success.

        A visible change (clearing "(rotated)", a new current credential, the end
        of a cooldown) is written at once. A plain usage count is kept in memory
        and written with the next change or every few seconds, so the hot path
        does not pay an fsync per request; a crash loses only those counts.
        """
        now = self.clock()
        data = self.store.peek()  # after every answer: from memory when nothing changed
        st = _state(data if data is not None else self.store.read(), cred.provider)
        visible_change = (
            st.rotated or st.current != cred.state_key or cred.state_key in st.cooldowns
        )
        if visible_change:
            with self._state_of(cred.provider) as (data, st):
                rules.record_success(st, cred, now)
                self._write_unsaved_usage(data, (cred.provider, st))
        else:
            self._unsaved.append((cred, now))
            if now - self._saved_at >= USAGE_SAVE_INTERVAL:
                self.save_usage()

    def save_usage(self) -> None:
        """Write the usage counts kept in memory (also called at shutdown)."""
        if self._unsaved:
            with self.store.transaction() as data:
                self._write_unsaved_usage(data)

    def _write_unsaved_usage(
        self, data: StoreData, held: tuple[str, RotationState] | None = None
    ) -> None:
        # Counts only: replaying a success here must not undo a later rotation. ``held``
        # is (provider, state) the caller is editing and writes back itself.
        states = dict([held]) if held is not None else {}
        for cred, when in self._unsaved:
            st = states.get(cred.provider)
            if st is None:
                st = states[cred.provider] = _state(data, cred.provider)
            rules.record_usage(st, cred, when)
        for provider, st in states.items():
            if held is None or provider != held[0]:
                _save(data, provider, st)
        self._unsaved = []
        self._saved_at = self.clock()

    def reset(self, provider: str) -> None:
        get_provider(provider)
        with self._state_of(provider) as (_, st):
            rules.reset(st)

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
            st = _state(data, provider)
            where = placement.keep_in_use(
                before, self.credentials(provider, data), self.pool(provider, data), st
            )
            if where.order is not None:
                data.set_order(provider, where.order)
            if where.current != st.current:
                st.current = where.current
                _save(data, provider, st)

    @staticmethod
    def _fresh_start(data: StoreData, cred: Credential) -> None:
        st = _state(data, cred.provider)
        st.forget_verdicts(cred.state_key)
        _save(data, cred.provider, st)

    @contextlib.contextmanager
    def _state_of(self, provider: str) -> Iterator[tuple[StoreData, RotationState]]:
        """One provider's typed state inside a store transaction, written back at the end."""
        with self.store.transaction() as data:
            st = _state(data, provider)
            yield data, st
            _save(data, provider, st)

    def add_key(self, provider: str, secret: str) -> tuple[Credential, bool]:
        """Add a key (or static token) to the pool: (the pooled credential, whether it is new)."""
        return self.add_to_pool(self._key_credential(provider, secret))

    def add_keys(self, provider: str, secrets: list[str]) -> list[tuple[Credential, bool]]:
        """:meth:`add_key` for many keys in one transaction; none is added if one is invalid."""
        creds = [self._key_credential(provider, secret) for secret in secrets]
        with self._writing(provider) as data:
            added = data.add_many_to_pool(creds)
            for pooled, _ in added:
                self._fresh_start(data, pooled)
        shown = {c.secret: c for c in reversed(self.credentials(provider))}
        return [(shown.get(pooled.secret, pooled), new) for pooled, new in added]

    @staticmethod
    def _key_credential(provider: str, secret: str) -> Credential:
        get_provider(provider)
        secret = secret.strip()
        if not secret or not secret.isascii() or not secret.isprintable() or " " in secret:
            raise InvalidParams("key", "must be printable ASCII without spaces")
        if len(secret) > MAX_KEY_LENGTH:
            raise InvalidParams("key", f"is longer than {MAX_KEY_LENGTH} characters")
        return Credential(
            id="",
            provider=provider,
            kind=kind_of_secret(provider, secret),
            source="pool",
            secret=secret,
        )

    def add_to_pool(self, cred: Credential) -> tuple[Credential, bool]:
        """Add ``cred`` to its provider's pool: (the pooled credential, whether it is new)."""
        get_provider(cred.provider)
        with self._writing(cred.provider) as data:
            pooled, new = data.add_to_pool(cred)
            self._fresh_start(data, pooled)
        # The same secret may be shown under another id that comes first (an environment
        # key in use): answer with the credential as status shows it.
        shown = next(
            (c for c in self.credentials(cred.provider) if c.secret == pooled.secret), None
        )
        return shown or pooled, new

    def add_login(self, provider: str) -> tuple[Credential, bool]:
        """Add the provider's current login or token profile to the pool.

        The newest-expiring OAuth or token profile is the "current" login. An
        OAuth login keeps its refresh token in the pool, so the pooled copy
        stays usable; the profile is removed so the login is not in rotation twice.
        """
        get_provider(provider)
        with self._writing(provider) as data:
            logins = [c for c in data.profiles(provider) if c.kind in ("oauth", "token")]
            if not logins:
                raise InvalidParams(
                    "key",
                    f"no {provider} login to add: log in first, or pass the key to add",
                )
            login = max(logins, key=lambda c: c.expires_at or 0.0)
            pooled, new = data.add_to_pool(attrs.evolve(login, label=login.label or login.id))
            data.remove_profile(login.id)
            self._fresh_start(data, pooled)
            return pooled, new

    def save_profile(self, cred: Credential) -> Saved:
        """Store ``cred`` as its profile, replacing the one of that name.

        Refused (InvalidParams) when its name is not a valid profile name, or when the
        same token is already saved as another profile: two names for one token would
        rotate it twice and, for a login, spend one refresh token from two places.
        """
        get_provider(cred.provider)
        check_profile_id(cred.provider, cred.id)
        with self._writing(cred.provider) as data:
            for other in data.profiles(cred.provider):
                if other.id != cred.id and (
                    other.secret == cred.secret
                    or (cred.refresh is not None and other.refresh == cred.refresh)
                ):
                    raise InvalidParams(
                        "profile", f"that token is already saved as profile {other.id}"
                    )
            old = data.get_profile(cred.id)
            data.put_profile(cred)
            self._fresh_start(data, cred)
        return "added" if old is None else ("unchanged" if old == cred else "updated")

    def save_login(self, cred: Credential) -> None:
        """Store a new login as its profile (see :meth:`save_profile`)."""
        self.save_profile(cred)

    def set_order(self, provider: str, ids: list[str]) -> list[str]:
        """Make ``ids`` the explicit order; every id ``status`` shows is accepted."""
        get_provider(provider)
        with self.store.transaction() as data:
            known = {c.id for c in self.credentials(provider, data)}
            unknown = [i for i in ids if i not in known]
            if unknown:
                # Ids are not secrets (a fingerprint at most), so naming them is safe.
                raise InvalidParams(
                    "ids", f"unknown {provider} credential id(s): {', '.join(unknown)}"
                )
            data.set_order(provider, ids)
            return data.order(provider)

    def clear_order(self, provider: str) -> None:
        get_provider(provider)
        with self.store.transaction() as data:
            data.clear_order(provider)

    def remove(self, provider: str, *, fingerprint: str | None, index: int | None) -> Credential:
        """Remove a stored credential by fingerprint, id or 1-based pool index."""
        get_provider(provider)
        with self.store.transaction() as data:
            creds = self.credentials(provider, data)
            if index is not None:
                pool = self.pool(provider, data)
                if not 1 <= index <= len(pool):
                    raise InvalidParams("index", f"must be between 1 and {len(pool)}")
                target = pool[index - 1]
            else:
                matches = [c for c in creds if fingerprint in (c.fingerprint, c.id)]
                if not matches:
                    raise InvalidParams(
                        "fingerprint", f"no {provider} credential has that fingerprint or id"
                    )
                if len(matches) > 1:
                    raise InvalidParams("fingerprint", "matches several credentials: use its id")
                target = matches[0]
            if target.source == "env":
                raise InvalidParams(
                    "fingerprint" if index is None else "index",
                    f"{target.id} comes from the environment: unset the variable instead",
                )
            if target.source == "pool":
                data.remove_from_pool(provider, target.id)
            else:
                data.remove_profile(target.id)
            _forget(data, target)
            return target

    # -- logins --------------------------------------------------------------------

    def stored_login(self, cred: Credential) -> Credential | None:
        """The stored copy of the OAuth login ``cred`` was read from (see _find_login)."""
        return _find_login(self.store.read(), cred)

    def renew_login(
        self, cred: Credential, *, secret: str, refresh: str | None, expires_at: float | None
    ) -> Credential:
        """Write a refreshed login's new tokens where the login lives now; the renewed login.

        Logged out meanwhile: nothing is written, and the renewed credential serves only
        the request that refreshed it.
        """
        renewed = attrs.evolve(cred, secret=secret, refresh=refresh, expires_at=expires_at)
        with self.store.transaction() as data:
            target = _find_login(data, cred)
            if target is not None:
                renewed = attrs.evolve(
                    target, secret=secret, refresh=refresh, expires_at=expires_at
                )
                data.update_credential(renewed)
        return renewed

    def logout(self, provider: str, profile_id: str) -> Credential | None:
        """Remove the login (OAuth or token) profile ``profile_id``; None when there is none.

        Copies of the login added to the pool with ``keyAdd`` stay: they are pool
        entries of their own, removed with ``keyRemove``.
        """
        get_provider(provider)
        with self.store.transaction() as data:
            cred = data.get_profile(profile_id)
            if cred is None or cred.provider != provider or cred.kind not in ("oauth", "token"):
                return None
            data.remove_profile(profile_id)
            _forget(data, cred)
            return cred


def _forget(data: StoreData, cred: Credential) -> None:
    """Drop the rotation state of a credential that left the store."""
    st = _state(data, cred.provider)
    st.forget(cred.state_key)
    _save(data, cred.provider, st)


def _state(data: StoreData, provider: str) -> RotationState:
    """A typed copy of one provider's state: reading it never changes the store's data."""
    return RotationState.from_doc(data.provider_state(provider))


def _save(data: StoreData, provider: str, st: RotationState) -> None:
    doc = data.provider_state(provider)
    new = st.to_doc()
    if doc != new:
        doc.clear()
        doc.update(new)


def _find_login(data: StoreData, cred: Credential) -> Credential | None:
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
