"""Where llm-sidecar keeps its files.

Everything lives in one directory: ``$LLM_SIDECAR_HOME`` when set, else the
platform's user config directory for ``llm-sidecar`` (``~/.config/llm-sidecar``
on Linux). The directory is created 0700 on first write, never on read.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "CREDENTIALS_FILE",
    "ENV_FILE",
    "LOCK_FILE",
    "POOL_FILE",
    "STATE_FILE",
    "home",
]

CREDENTIALS_FILE = "credentials.json"  # profiles and explicit order
POOL_FILE = "pool.json"  # the key pool per provider
STATE_FILE = "state.json"  # rotation state shared by every sidecar process
LOCK_FILE = ".lock"  # one cross-process lock guards all three
ENV_FILE = ".env"  # optional provider variables for a sidecar without a shell environment


def home(environ: os._Environ[str] | dict[str, str] | None = None) -> Path:
    """The sidecar's home directory (not created here)."""
    env = os.environ if environ is None else environ
    override = env.get("LLM_SIDECAR_HOME")
    if override:
        return Path(override).expanduser()
    # platformdirs is imported here, not at module level: most commands that
    # run with LLM_SIDECAR_HOME set (tests, the demo) never need it.
    import platformdirs

    return platformdirs.user_config_path("llm-sidecar", appauthor=False, roaming=True)
