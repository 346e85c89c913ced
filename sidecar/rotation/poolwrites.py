"""Every write of a credential: keys added, tokens pasted, logins saved and renewed,
the explicit order and the pool policy, removals.

Unlike :mod:`~sidecar.rotation.keypool` (which rotates and records outcomes) this is
what the user (or a login) asks for; each method is one transaction of
:class:`~sidecar.rotation.poolbase.PoolBase`.
"""

from __future__ import annotations

from typing import Literal

import attrs

from sidecar.catalog import get_provider
from sidecar.credentials import Credential
from sidecar.errors import InvalidParams
from sidecar.profiles import check_profile_id
from sidecar.rotation.poolbase import PoolBase, find_login, forget
from sidecar.rotation.state import POLICIES
from sidecar.sources import kind_of_secret

__all__ = ["PoolWrites"]

Saved = Literal["added", "updated", "unchanged"]
MAX_KEY_LENGTH = 4096  # real keys and tokens are a few hundred characters at most


class PoolWrites(PoolBase):
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
            forget(data, target)
            return target

    # -- logins --------------------------------------------------------------------

    def stored_login(self, cred: Credential) -> Credential | None:
        """The stored copy of the OAuth login ``cred`` was read from (see find_login)."""
        return find_login(self.store.read(), cred)

    def renew_login(
        self, cred: Credential, *, secret: str, refresh: str | None, expires_at: float | None
    ) -> Credential:
        """Write a refreshed login's new tokens where the login lives now; the renewed login.

        Logged out meanwhile: nothing is written, and the renewed credential serves only
        the request that refreshed it.
        """
        renewed = attrs.evolve(cred, secret=secret, refresh=refresh, expires_at=expires_at)
        with self.store.transaction() as data:
            target = find_login(data, cred)
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
            forget(data, cred)
            return cred

    # -- policy --------------------------------------------------------------------

    def set_policy(self, provider: str, policy: str) -> str:
        """``sticky`` (stay on the key that answers) or ``primary`` (back to the first
        key as soon as it is usable); kept in the provider's shared state."""
        get_provider(provider)
        if policy not in POLICIES:
            raise InvalidParams("policy", f"must be one of {', '.join(POLICIES)}")
        with self._state_of(provider) as (_, st):
            st.policy = policy
        return policy

    def policy(self, provider: str) -> str:
        get_provider(provider)
        return self.state(provider).policy
