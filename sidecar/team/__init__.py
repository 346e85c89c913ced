"""A team's shared rotation state on Redis, so every machine skips a key any one saw limited.

Off unless ``LLM_SIDECAR_STATE`` names a server (see docs/teams.md). Reading the
setting costs nothing; the link (asyncio, the redis client) is imported only when a
process starts one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sidecar.team._config import NAMESPACE_ENV, STATE_ENV, TeamConfig, read_team

if TYPE_CHECKING:
    from sidecar.team._names import Counts, Entry, credential_hash
    from sidecar.team._oneshot import Probe, forget, probe, usage
    from sidecar.team._sync import Link, LocalState, TeamSync

__all__ = [
    "NAMESPACE_ENV",
    "STATE_ENV",
    "Counts",
    "Entry",
    "Link",
    "LocalState",
    "Probe",
    "TeamConfig",
    "TeamSync",
    "credential_hash",
    "forget",
    "probe",
    "read_team",
    "usage",
]

_LAZY = {
    "Counts": "sidecar.team._names",
    "Entry": "sidecar.team._names",
    "credential_hash": "sidecar.team._names",
    "Link": "sidecar.team._sync",
    "LocalState": "sidecar.team._sync",
    "TeamSync": "sidecar.team._sync",
    "Probe": "sidecar.team._oneshot",
    "probe": "sidecar.team._oneshot",
    "forget": "sidecar.team._oneshot",
    "usage": "sidecar.team._oneshot",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
