"""One-off calls to the team's server from a command that exits right after.

Unlike :mod:`sidecar.team._sync` (a long-lived link on an event loop) each is a few
blocking round trips with a short timeout: a look for ``status`` and ``doctor``
(reachable, how fast, which server), and the team's half of ``key reset``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

from sidecar.team._config import TeamConfig
from sidecar.team._names import POSITION, Counts, Names, credential_hash, pool_hash

if TYPE_CHECKING:
    import redis

    from sidecar.credentials import Credential

__all__ = ["Probe", "Totals", "forget", "probe", "usage"]

TIMEOUT = 2.0


@attrs.frozen
class Probe:
    online: bool
    latency_ms: float | None = None  # one PING's round trip
    version: str | None = None  # the server's redis_version
    error: str | None = None  # the kind of failure only: the URL may hold a password

    def describe(self) -> str:
        if not self.online:
            return f"offline ({self.error})"
        return f"online, {self.latency_ms:.1f} ms, Redis {self.version}"


def _client(config: TeamConfig) -> redis.Redis:
    import redis

    return redis.Redis.from_url(config.url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)


def probe(config: TeamConfig) -> Probe:
    import redis

    client = _client(config)
    try:
        start = time.perf_counter()
        client.ping()
        latency = (time.perf_counter() - start) * 1000
        version = client.info("server").get("redis_version")
        return Probe(True, latency, str(version) if version else "unknown")
    except (redis.RedisError, OSError) as exc:
        return Probe(False, error=type(exc).__name__)
    finally:
        client.close()


@attrs.frozen
class Totals:
    """The team's usage counts as one command read them, by state key."""

    by_key: dict[str, Counts]

    def usage_of(self, cred: Credential) -> Counts | None:
        return self.by_key.get(cred.state_key)


def usage(config: TeamConfig, creds: Iterable[Credential]) -> Totals | None:
    """The team's counts of ``creds`` (none counted yet: zero); None when the server
    cannot be read, so that the caller shows this machine's own."""
    import redis

    names = Names(config.namespace)
    client = _client(config)
    try:
        salt = client.get(names.salt)
        shared = [c for c in creds if c.kind != "oauth"]
        if salt is None:
            return Totals({c.state_key: Counts() for c in shared})
        key = salt if isinstance(salt, bytes) else salt.encode()
        pipe = client.pipeline(transaction=False)
        for cred in shared:
            digest = credential_hash(key, cred.provider, cred.secret)
            pipe.hmget(names.usage(cred.provider, digest), "requests", "failures", "lastUsed")
        rows = pipe.execute()
        pairs = zip(shared, rows, strict=True)
        return Totals({c.state_key: Counts.from_row(row) or Counts() for c, row in pairs})
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()


def forget(config: TeamConfig, provider: str, creds: Iterable[Credential]) -> str | None:
    """Drop the team's entries of ``creds`` and tell every sidecar; None, else why it failed."""
    import redis

    names = Names(config.namespace)
    client = _client(config)
    try:
        salt = client.get(names.salt)
        if salt is None:
            return None  # an empty namespace holds nothing to forget
        pipe = client.pipeline(transaction=True)
        origin = secrets.token_hex(8)
        key = salt if isinstance(salt, bytes) else salt.encode()
        shared = [c for c in creds if c.kind != "oauth"]
        pool = pool_hash(key, provider, [credential_hash(key, provider, c.secret) for c in shared])
        if pool is not None:  # new machines start on the first key again
            pipe.delete(names.entry(POSITION, provider, pool))
        for cred in shared:
            digest = credential_hash(key, provider, cred.secret)
            found = [
                k
                for k in client.scan_iter(match=names.of_credential(provider, digest), count=500)
                if names.shared(k)
            ]
            if found:
                pipe.delete(*found)
            message = {"origin": origin, "forget": True, "provider": provider, "hash": digest}
            pipe.publish(names.channel, json.dumps(message))
        pipe.execute()
        return None
    except (redis.RedisError, OSError) as exc:
        return type(exc).__name__
    finally:
        client.close()
