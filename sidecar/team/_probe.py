"""A one-off look at the team's server, for ``status`` and ``doctor``: reachable, how fast, which.

Unlike :mod:`sidecar.team._sync` (a long-lived link on an event loop) this is one
blocking round trip with a short timeout, from a command that exits right after.
"""

from __future__ import annotations

import time

import attrs

from sidecar.team._config import TeamConfig

__all__ = ["Probe", "probe"]

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


def probe(config: TeamConfig) -> Probe:
    import redis

    client = redis.Redis.from_url(
        config.url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
    )
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
