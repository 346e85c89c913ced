"""Profile names: the one check every entry point shares.

A profile is stored as ``<provider>:<name>``. The name is checked here, and only
here, whether it comes from ``login --profile``, ``auth paste-token --profile``,
``sidecar/login``, ``logout`` or the key pool's write path: a name one entry point
accepts is never refused by another (e.g. saved by paste-token, then impossible to
log out).
"""

from __future__ import annotations

import re

from sidecar.errors import InvalidParams

__all__ = ["DEFAULT_PROFILE", "check_profile_id", "profile_id"]

DEFAULT_PROFILE = "default"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_RULE = "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def profile_id(provider: str, name: str | None) -> str:
    """``<provider>:<name>``; InvalidParams (field ``profile``) for a name not allowed."""
    name = DEFAULT_PROFILE if name is None else name
    if not _NAME.match(name):
        # The name is not quoted: a key pasted into the wrong field must not come back.
        raise InvalidParams("profile", _RULE)
    return f"{provider}:{name}"


def check_profile_id(provider: str, id: str) -> None:
    """Raise InvalidParams unless ``id`` is a well-formed profile id of ``provider``."""
    prefix, sep, name = id.partition(":")
    if not sep or prefix != provider:
        raise InvalidParams("profile", f"a {provider} profile id is {provider}:<name>")
    profile_id(provider, name)
