"""The credential model: one API key, static token or OAuth login."""

from __future__ import annotations

import functools
from typing import Any, Literal

import attrs

from sidecar.fingerprints import fingerprint, secret_hash

__all__ = ["KINDS", "SOURCES", "Credential", "Kind", "Source"]

Kind = Literal["api_key", "token", "oauth"]
Source = Literal["profile", "pool", "env"]
KINDS: tuple[Kind, ...] = ("api_key", "token", "oauth")
SOURCES: tuple[Source, ...] = ("profile", "pool", "env")


@attrs.frozen
class Credential:
    """A credential as the rotation engine sees it, wherever it is stored.

    ``id`` is what users and files name it by: ``anthropic:work`` for a
    profile, ``anthropic:pool-1a2b3c4d`` for a pool entry, ``env:ANTHROPIC_API_KEY``
    for an environment variable. ``secret`` is the API key, the static token
    or the OAuth access token; it is kept out of ``repr``.
    """

    id: str
    provider: str
    kind: Kind
    source: Source
    secret: str = attrs.field(repr=False)
    refresh: str | None = attrs.field(default=None, repr=False)
    expires_at: float | None = None  # epoch seconds; None: never expires
    label: str | None = None  # where it came from, e.g. "imported from pi"

    # Cached: rotation and status ask every pooled credential for both, many times per
    # request (attrs keeps them in slots of the frozen instance).
    @functools.cached_property
    def fingerprint(self) -> str:
        return fingerprint(self.secret)

    @functools.cached_property
    def state_key(self) -> str:
        """The key of this credential's rotation state (cooldown, usage).

        Keys and static tokens are known by a hash of the secret, so that the
        same key reached through two sources, or by two processes with
        different environments, shares one cooldown. An OAuth login is known
        by its id: its access token changes at every refresh.
        """
        if self.kind == "oauth":
            return f"id:{self.id}"
        return f"h:{secret_hash(self.secret)}"

    def to_record(self) -> dict[str, Any]:
        """The JSON form stored in credentials.json and pool.json."""
        record: dict[str, Any] = {"type": self.kind, "provider": self.provider}
        if self.kind == "oauth":
            record.update(access=self.secret, refresh=self.refresh)
        elif self.kind == "token":
            record["token"] = self.secret
        else:
            record["key"] = self.secret
        if self.expires_at is not None:
            record["expires"] = int(self.expires_at * 1000)  # ms, as pi and OpenClaw store it
        if self.label:
            record["label"] = self.label
        return record

    @classmethod
    def from_record(cls, id: str, source: Source, record: dict[str, Any]) -> Credential:
        """Parse a stored record; ValueError naming what is wrong."""
        kind = record.get("type")
        provider = record.get("provider") or id.split(":", 1)[0]
        if kind == "oauth":
            secret, refresh = record.get("access"), record.get("refresh")
        elif kind == "token":
            secret, refresh = record.get("token"), None
        elif kind == "api_key":
            secret, refresh = record.get("key"), None
        else:
            raise ValueError(f"{id}: unknown credential type {kind!r}")
        if not isinstance(secret, str) or not secret:
            raise ValueError(f"{id}: missing secret")
        if refresh is not None and not isinstance(refresh, str):
            raise ValueError(f"{id}: refresh token is not a string")
        expires = record.get("expires")
        if expires is not None and not isinstance(expires, int | float):
            raise ValueError(f"{id}: expires is not a number")
        label = record.get("label")
        return cls(
            id=id,
            provider=str(provider),
            kind=kind,
            source=source,
            secret=secret,
            refresh=refresh,
            expires_at=None if expires is None else float(expires) / 1000,
            label=label if isinstance(label, str) else None,
        )
