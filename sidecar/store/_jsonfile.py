"""Reading and writing one JSON document safely.

Writes are atomic (temp file in the same directory, fsync, rename, fsync of
the directory), so a reader or a crash never sees half a file. Files are
created 0600 whatever the umask: ``mkstemp`` makes them so. Callers hold the
store's lock around every read-modify-write; plain reads need no lock because
a rename is atomic. A writer killed between ``mkstemp`` and the rename leaves a
``.<name>.*.tmp`` file; the next transaction deletes it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = [
    "CorruptFile",
    "read_json",
    "remove_stale_temp_files",
    "set_aside",
    "write_json_atomic",
]

log = logging.getLogger(__name__)


class CorruptFile(Exception):
    """The file exists but is not a JSON object."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when the file does not exist."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFile(path, f"not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict):
        raise CorruptFile(path, f"expected a JSON object, found {type(doc).__name__}")
    return doc


def write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    data = json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def set_aside(path: Path) -> Path:
    """Move a corrupt file out of the way, keeping it for the user to inspect."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, target)
    # Whoever wrote the corrupt file chose its mode; what we keep of it stays private.
    with contextlib.suppress(OSError):
        os.chmod(target, 0o600, follow_symlinks=False)
    _fsync_dir(path.parent)
    log.warning("set aside corrupt file %s as %s", path, target)
    return target


def remove_stale_temp_files(directory: Path, names: tuple[str, ...]) -> list[Path]:
    """Delete temporary files that a writer killed mid-write left behind.

    Call it only under the store's lock: every write happens under it, so a temporary
    file seen there belongs to no live writer. It may hold a full copy of the pool (keys
    the user has removed since, too), so it must not linger.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    prefixes = tuple(f".{name}." for name in names)
    for entry in entries:
        if entry.name.startswith(prefixes) and entry.name.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted write", len(removed))
    return removed


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
