"""The three documents of the store, and typed access to what they hold.

``credentials.json``: ``{"version": 1, "profiles": {id: record}, "order": {provider: [id, ...]}}``
``pool.json``:        ``{"version": 1, "pools": {provider: [{"id": id, **record}, ...]}}``
``state.json``:       ``{"version": 1, "providers": {provider: {...rotation state...}}}``

Records are those of :meth:`Credential.to_record`. A record that cannot be
parsed is skipped and reported in ``problems``, never dropped from the file.

A pool entry is replaced, never edited in place: copies of the pool document share
their entries (:func:`sidecar.store._cache.clone_doc`).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import attrs

from sidecar.credentials import Credential
from sidecar.fingerprints import secret_hash

__all__ = ["StoreData"]


def _empty(key: str) -> dict[str, Any]:
    return {"version": 1, key: {}}


# Parsed pool entries, by content: rotation reads every pooled key several times per
# request, and at 1,000 keys parsing them again each time was most of its cost.
# Credentials are frozen, so one parse can be shared. Bounded: cleared when full.
_PARSED: dict[tuple[str, tuple[tuple[str, Any], ...]], Credential] = {}
_PARSED_MAX = 20_000


def _pool_credential(provider: str, id: str, entry: dict[str, Any]) -> Credential:
    try:
        key = (provider, tuple(entry.items()))
        hash(key)
    except TypeError:  # a value that is a list or an object: parse it every time
        return Credential.from_record(id, "pool", {**entry, "provider": provider})
    cred = _PARSED.get(key)
    if cred is None:
        cred = Credential.from_record(id, "pool", {**entry, "provider": provider})
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[key] = cred
    return cred


# The last pool parsed per provider: (its entries, their credentials, the problems
# found), so that reading an unchanged pool of 1,000 keys, several times per request,
# is a comparison of identities rather than 1,000 lookups of _PARSED.
_POOLS: dict[str, tuple[list[Any], tuple[Credential, ...], tuple[str, ...]]] = {}


def _same_entries(kept: list[Any], entries: list[Any]) -> bool:
    return len(kept) == len(entries) and all(a is b for a, b in zip(kept, entries, strict=True))


@attrs.define
class StoreData:
    credentials: dict[str, Any] = attrs.field(factory=lambda: {**_empty("profiles"), "order": {}})
    pool_doc: dict[str, Any] = attrs.field(factory=lambda: _empty("pools"))
    state: dict[str, Any] = attrs.field(factory=lambda: _empty("providers"))
    problems: list[str] = attrs.field(factory=list)

    def copy(self) -> StoreData:
        return StoreData(
            copy.deepcopy(self.credentials),
            copy.deepcopy(self.pool_doc),
            copy.deepcopy(self.state),
            list(self.problems),
        )

    def fingerprints(self) -> tuple[str, str, str]:
        """Serialized documents, to tell which ones a transaction changed."""
        return (
            json.dumps(self.credentials, sort_keys=True),
            json.dumps(self.pool_doc, sort_keys=True),
            json.dumps(self.state, sort_keys=True),
        )

    # -- profiles ---------------------------------------------------------------

    def _profiles_map(self) -> dict[str, Any]:
        profiles = self.credentials.setdefault("profiles", {})
        if not isinstance(profiles, dict):
            profiles = self.credentials["profiles"] = {}
        return profiles

    def profiles(self, provider: str | None = None) -> list[Credential]:
        found = []
        for id, record in sorted(self._profiles_map().items()):
            try:
                cred = Credential.from_record(id, "profile", record)
            except (ValueError, AttributeError, TypeError) as exc:
                self.problems.append(f"credentials.json: skipped profile: {exc}")
                continue
            if provider is None or cred.provider == provider:
                found.append(cred)
        return found

    def get_profile(self, id: str) -> Credential | None:
        return next((c for c in self.profiles() if c.id == id), None)

    def put_profile(self, cred: Credential) -> None:
        self._profiles_map()[cred.id] = cred.to_record()

    def remove_profile(self, id: str) -> bool:
        removed = self._profiles_map().pop(id, None) is not None
        for ids in self._order_map().values():
            if id in ids:
                ids.remove(id)
        return removed

    def _order_map(self) -> dict[str, list[str]]:
        order = self.credentials.setdefault("order", {})
        if not isinstance(order, dict):
            order = self.credentials["order"] = {}
        return order

    def order(self, provider: str) -> list[str]:
        ids = self._order_map().get(provider, [])
        return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []

    def set_order(self, provider: str, ids: list[str]) -> None:
        self._order_map()[provider] = list(dict.fromkeys(ids))

    def clear_order(self, provider: str) -> None:
        self._order_map().pop(provider, None)

    # -- pool -------------------------------------------------------------------

    def _pool_list(self, provider: str) -> list[Any]:
        pools = self.pool_doc.setdefault("pools", {})
        if not isinstance(pools, dict):
            pools = self.pool_doc["pools"] = {}
        entries = pools.setdefault(provider, [])
        if not isinstance(entries, list):
            entries = pools[provider] = []
        return entries

    def pool(self, provider: str) -> list[Credential]:
        entries = self._pool_list(provider)
        kept = _POOLS.get(provider)
        if kept is not None and _same_entries(kept[0], entries):
            # The same entry objects (copies of the pool document share them, and
            # nothing edits one in place): the same credentials and the same problems.
            self.problems.extend(kept[2])
            return list(kept[1])
        found = []
        problems = []
        for entry in entries:
            try:
                id = entry["id"]
                if not isinstance(id, str):
                    raise TypeError(f"an entry's id is {type(id).__name__}, not a string")
                found.append(_pool_credential(provider, id, entry))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                problems.append(f"pool.json: skipped a {provider} entry: {exc}")
        self.problems.extend(problems)
        # The entries are kept too: their identity is what a later call compares.
        _POOLS[provider] = (list(entries), tuple(found), tuple(problems))
        return found

    def add_to_pool(self, cred: Credential) -> tuple[Credential, bool]:
        """Add ``cred`` to its provider's pool; (the pooled credential, whether it is new)."""
        for existing in self.pool(cred.provider):
            if existing.secret == cred.secret or (
                cred.refresh is not None and existing.refresh == cred.refresh
            ):
                return existing, False
        # The id is fixed at creation: an OAuth entry keeps it across refreshes.
        pooled = attrs.evolve(
            cred, id=f"{cred.provider}:pool-{secret_hash(cred.secret)[:8]}", source="pool"
        )
        self._pool_list(cred.provider).append({"id": pooled.id, **pooled.to_record()})
        return pooled, True

    def add_many_to_pool(self, creds: list[Credential]) -> list[tuple[Credential, bool]]:
        """:meth:`add_to_pool` for many credentials, in one pass over each pool.

        The pool is parsed once, not once per credential: adding 1,000 keys one by one
        was quadratic.
        """
        results: list[tuple[Credential, bool]] = []
        by_secret: dict[tuple[str, str], Credential] = {}
        by_refresh: dict[tuple[str, str], Credential] = {}

        def index(c: Credential) -> None:
            by_secret.setdefault((c.provider, c.secret), c)
            if c.refresh is not None:
                by_refresh.setdefault((c.provider, c.refresh), c)

        for provider in {c.provider for c in creds}:
            for existing in self.pool(provider):
                index(existing)
        for cred in creds:
            found = by_secret.get((cred.provider, cred.secret))
            if found is None and cred.refresh is not None:
                found = by_refresh.get((cred.provider, cred.refresh))
            if found is not None:
                results.append((found, False))
                continue
            pooled = attrs.evolve(
                cred, id=f"{cred.provider}:pool-{secret_hash(cred.secret)[:8]}", source="pool"
            )
            self._pool_list(cred.provider).append({"id": pooled.id, **pooled.to_record()})
            index(pooled)
            results.append((pooled, True))
        return results

    def remove_from_pool(self, provider: str, id: str) -> bool:
        entries = self._pool_list(provider)
        kept = [e for e in entries if not (isinstance(e, dict) and e.get("id") == id)]
        removed = len(kept) != len(entries)
        entries[:] = kept
        return removed

    # -- any stored credential --------------------------------------------------

    def update_credential(self, cred: Credential) -> None:
        """Write back a changed credential (a refreshed login) where it is stored."""
        if cred.source == "profile":
            self.put_profile(cred)
        elif cred.source == "pool":
            entries = self._pool_list(cred.provider)
            for i, entry in enumerate(entries):
                if isinstance(entry, dict) and entry.get("id") == cred.id:
                    entries[i] = {"id": cred.id, **cred.to_record()}

    def stored_providers(self) -> set[str]:
        names = {c.provider for c in self.profiles()}
        pools = self.pool_doc.get("pools", {})
        if isinstance(pools, dict):
            names.update(p for p, entries in pools.items() if entries)
        return names

    # -- rotation state ---------------------------------------------------------

    def provider_state(self, provider: str) -> dict[str, Any]:
        """The mutable rotation-state document of one provider."""
        providers = self.state.setdefault("providers", {})
        if not isinstance(providers, dict):
            providers = self.state["providers"] = {}
        doc = providers.setdefault(provider, {})
        if not isinstance(doc, dict):
            doc = providers[provider] = {}
        return doc
