"""Reading the home's ``.env`` file, which only the user writes.

Unlike the store's documents it is never moved or rewritten: a ``.env`` that is not
a regular file, too large or not text is simply not read, and the reason is kept
for ``status``, ``sidecar/status`` and ``doctor`` to report.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from sidecar import paths
from sidecar.store.safefile import read_capped

__all__ = ["EnvFile", "read_env_file"]


@attrs.frozen
class EnvFile:
    text: str | None  # None when absent or not read
    problem: str | None = None  # why it was not read, naming the file and the fix


def read_env_file(home: Path) -> EnvFile:
    path = home / paths.ENV_FILE
    try:
        raw = read_capped(path)
    except OSError as exc:
        # NotRegularFile and TooLarge word themselves; others (EACCES) need the path.
        reason = str(exc) if exc.strerror is None else f"cannot read {path}: {exc.strerror}"
        return EnvFile(None, f"{reason}: not read; make it a regular file of KEY=value lines")
    if raw is None:
        return EnvFile(None)
    try:
        return EnvFile(raw.decode())
    except UnicodeDecodeError:
        return EnvFile(None, f"{path} is not UTF-8 text: not read; fix or remove it")
