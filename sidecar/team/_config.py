"""Where a team's shared rotation state lives: ``LLM_SIDECAR_STATE`` and its namespace.

Unlike :mod:`sidecar.team._sync` (talking to the server) this only reads and checks
the two variables, so that :mod:`sidecar.settings` can report a bad value under the
one policy for bad settings without importing a Redis client.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import attrs

__all__ = ["NAMESPACE_ENV", "STATE_ENV", "TeamConfig", "read_team"]

STATE_ENV = "LLM_SIDECAR_STATE"
NAMESPACE_ENV = "LLM_SIDECAR_STATE_NAMESPACE"
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@attrs.frozen
class TeamConfig:
    url: str = attrs.field(repr=False)  # may hold a password: never logged or shown
    namespace: str = "default"

    @property
    def shown(self) -> str:
        """The server as status and doctor show it: scheme, host, port and db, no password."""
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        db = parts.path if parts.path not in ("", "/") else ""
        return f"{parts.scheme}://{host}{port}{db} ({self.namespace})"


def read_team(env: Mapping[str, str]) -> TeamConfig | None:
    """The team state the environment asks for; None for the files alone.

    Raises :class:`sidecar.settings.BadSetting` for a value that cannot be used.
    """
    from sidecar.settings import BadSetting

    raw = env.get(STATE_ENV, "").strip()
    if not raw:
        return None
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("redis", "rediss") or not parts.hostname:
        # Never echo the value: it may carry the server's password.
        raise BadSetting(
            STATE_ENV,
            f"{STATE_ENV} must be a URL like redis://host:6379/0 or rediss://… (TLS)",
        )
    namespace = env.get(NAMESPACE_ENV, "").strip() or "default"
    if not _NAMESPACE.fullmatch(namespace):
        raise BadSetting(
            NAMESPACE_ENV,
            f"{NAMESPACE_ENV} must be 1–64 letters, digits, '.', '_' or '-'",
        )
    return TeamConfig(raw, namespace)
