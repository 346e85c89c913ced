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
import stat
import time
from pathlib import Path
from typing import Any

from sidecar.store._shape import shape_problem
from sidecar.store.safefile import NotRegularFile, TooLarge, read_capped_stat

__all__ = [
    "CorruptFile",
    "read_json",
    "read_json_stat",
    "remove_stale_temp_files",
    "set_aside",
    "write_json_atomic",
]

log = logging.getLogger(__name__)


class CorruptFile(Exception):
    """Something is at the path that the store cannot use as its document.

    Not JSON, JSON of the wrong shape, too large, or not a regular file at all: each
    is set aside as it is, never read as empty and then overwritten.
    """

    def __init__(self, path: Path, problem: str, *, unparsed: bool = False) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
        # Not JSON (an empty or cut-off file among them): possibly a write in progress
        # by someone who does not write atomically, where the other problems are not.
        self.unparsed = unparsed


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when the file does not exist.

    Raises :class:`CorruptFile` for anything the store cannot use, and ``OSError``
    when the file cannot be read at all (permission denied): that one is not
    corrupt, and is not moved.
    """
    return read_json_stat(path)[0]


def read_json_stat(path: Path) -> tuple[dict[str, Any] | None, os.stat_result | None]:
    """:func:`read_json`, with the ``fstat`` of the file it was read from."""
    try:
        raw, st = read_capped_stat(path)
    except NotRegularFile as exc:
        raise CorruptFile(path, f"{exc.kind}, not a regular file; not read") from None
    except TooLarge as exc:
        raise CorruptFile(path, f"larger than {exc.limit // (1024 * 1024)} MiB; not read") from None
    if raw is None:
        return None, None
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        # Every way parsing can fail: JSONDecodeError and UnicodeDecodeError are
        # ValueErrors, so is an integer of more digits than Python converts, and
        # nesting deeper than the parser's stack raises RecursionError.
        raise CorruptFile(
            path, f"not valid JSON ({exc.__class__.__name__})", unparsed=True
        ) from None
    if not isinstance(doc, dict):
        raise CorruptFile(path, f"expected a JSON object, found {type(doc).__name__}")
    problem = shape_problem(path.name, doc)
    if problem:
        raise CorruptFile(path, problem)
    return doc, st


def write_json_atomic(path: Path, doc: dict[str, Any]) -> os.stat_result:
    """Replace ``path`` with ``doc``; the stat of the file now there (callers hold the lock).

    Compact: indentation made a 1,000-key pool three times slower to write, and
    nobody edits these files by hand (the CLI does).
    """
    import tempfile  # only writers need it (and its import of random)

    data = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode() + b"\n"
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
    return os.stat(path)


def set_aside(path: Path) -> Path:
    """Move a corrupt file out of the way, keeping it for the user to inspect."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, target)  # a link is moved as a link: its target stays untouched
    # Whoever wrote the corrupt file chose its mode; what we keep of it stays private.
    # Only a file of our own: a link's target is not ours to change (and Linux cannot
    # chmod a link itself), nor is a device's.
    with contextlib.suppress(OSError):
        if stat.S_ISREG(os.lstat(target).st_mode):
            os.chmod(target, 0o600)
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
