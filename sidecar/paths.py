"""Where llm-sidecar keeps its files.

Everything lives in one directory: ``$LLM_SIDECAR_HOME`` when set, else the
platform's user config directory for ``llm-sidecar`` (``~/.config/llm-sidecar``
on Linux). The directory is created 0700 on first write, never on read; one
that exists is made 0700 on first use (:func:`secure_home`).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from sidecar.errors import StoreError

__all__ = [
    "BUDGETS_FILE",
    "CREDENTIALS_FILE",
    "ENV_FILE",
    "FALLBACKS_FILE",
    "LOCK_FILE",
    "POOL_FILE",
    "ROUTING_FILES",
    "SPEND_FILE",
    "STATE_FILE",
    "home",
    "secure_home",
]

log = logging.getLogger(__name__)

CREDENTIALS_FILE = "credentials.json"  # profiles and explicit order
POOL_FILE = "pool.json"  # the key pool per provider
STATE_FILE = "state.json"  # rotation state shared by every sidecar process
LOCK_FILE = ".lock"  # one cross-process lock guards all three
ENV_FILE = ".env"  # optional provider variables for a sidecar without a shell environment
FALLBACKS_FILE = "fallbacks.json"  # where requests go when a provider cannot answer
BUDGETS_FILE = "budgets.json"  # daily spending limits per provider
SPEND_FILE = "spend.json"  # the day's spend of providers with a budget
ROUTING_FILES = (FALLBACKS_FILE, BUDGETS_FILE, SPEND_FILE)  # sidecar.rotation.routing's


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


def secure_home(path: Path) -> None:
    """Make an existing home private before anything in it is read or written.

    Its ``.env`` is read as configuration and its files hold keys: a home others can
    enter is tightened to 0700 (a link is judged by its target), and one owned by
    another user is refused, since its owner could put anything in it. A home that
    does not exist yet is left to be created 0700 by the first write.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot use the home {path}: {exc.strerror}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise StoreError(f"the home {path} is not a directory: set LLM_SIDECAR_HOME to one")
    if st.st_uid != os.geteuid():
        raise StoreError(
            f"the home {path} belongs to uid {st.st_uid}, not to you (uid {os.geteuid()}):"
            " refusing to use it; set LLM_SIDECAR_HOME to a directory of your own"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        try:
            os.chmod(path, 0o700)
        except OSError as exc:
            raise StoreError(
                f"the home {path} is mode {mode:o} and cannot be made private: {exc.strerror}"
            ) from exc
        log.warning("the home %s was mode %o: made it 0700", path, mode)
