"""The credential store: profiles, the key pool and the shared rotation state.

All three live as JSON files in the sidecar's home (see :mod:`sidecar.paths`)
and change only inside :meth:`Store.transaction`, which holds one
cross-process lock, re-reads the files inside it, and atomically writes back
the ones that changed. Reads outside a transaction need no lock.

A corrupt file is set aside as ``<name>.corrupt-<time>`` (never overwritten),
reported in ``problems``, and treated as empty; the other files keep working.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from sidecar import paths
from sidecar.errors import StoreError
from sidecar.store._data import StoreData
from sidecar.store._jsonfile import (
    CorruptFile,
    read_json,
    remove_stale_temp_files,
    set_aside,
    write_json_atomic,
)

__all__ = ["Store", "StoreData"]

_FILES = (paths.CREDENTIALS_FILE, paths.POOL_FILE, paths.STATE_FILE)
LOCK_TIMEOUT = 15.0  # seconds; every hold is a few milliseconds of file I/O


class Store:
    def __init__(self, home: Path) -> None:
        self.home = home
        self._lock: FileLock | None = None

    @classmethod
    def default(cls) -> Store:
        return cls(paths.home())

    # -- reading ----------------------------------------------------------------

    def read(self) -> StoreData:
        """A snapshot of the three documents, without taking the lock."""
        try:
            return self._load()
        except CorruptFile:
            # Setting the file aside changes the directory: do it under the lock,
            # where _load re-checks it.
            with self._locked():
                return self._load(set_aside_corrupt=True)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StoreData]:
        """Lock, re-read, let the caller change the data, write what changed."""
        with self._locked():
            data = self._load(set_aside_corrupt=True)
            before = data.fingerprints()
            yield data
            after = data.fingerprints()
            docs = (data.credentials, data.pool_doc, data.state)
            if before != after:
                # A writer killed mid-write left its temporary file: nobody else can be
                # writing now (we hold the lock), so any one here is stale.
                remove_stale_temp_files(self.home, _FILES)
            for name, old, new, doc in zip(_FILES, before, after, docs, strict=True):
                if old != new:
                    try:
                        write_json_atomic(self.home / name, doc)
                    except OSError as exc:
                        raise StoreError(
                            f"cannot write {self.home / name}: {exc.strerror}"
                        ) from exc

    def _load(self, set_aside_corrupt: bool = False) -> StoreData:
        data = StoreData()
        for name, attr in zip(_FILES, ("credentials", "pool_doc", "state"), strict=True):
            path = self.home / name
            try:
                doc = read_json(path)
            except CorruptFile as exc:
                if not set_aside_corrupt:
                    raise
                moved = set_aside(path)
                data.problems.append(f"{exc.path}: {exc.problem}; set aside as {moved.name}")
                continue
            except OSError as exc:
                raise StoreError(f"cannot read {path}: {exc.strerror}") from exc
            if doc is not None:
                setattr(data, attr, doc)
        return data

    # -- locking ----------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.ensure_home()
        if self._lock is None:
            # fcntl-based: a lock held by a process that died is released by the kernel.
            self._lock = FileLock(self.home / paths.LOCK_FILE, timeout=LOCK_TIMEOUT, mode=0o600)
        try:
            with self._lock:
                yield
        except Timeout as exc:
            raise StoreError(
                f"the store at {self.home} stayed locked for {LOCK_TIMEOUT:.0f} s"
            ) from exc

    def ensure_home(self) -> None:
        """Create the home directory 0700 if it does not exist."""
        if not self.home.is_dir():
            try:
                self.home.mkdir(parents=True, mode=0o700, exist_ok=True)
                os.chmod(self.home, 0o700)  # mkdir's mode is filtered by the umask
            except OSError as exc:
                raise StoreError(f"cannot create {self.home}: {exc.strerror}") from exc

    # -- for status polling and doctor -------------------------------------------

    def stamp(self) -> tuple[tuple[int, int], ...]:
        """(mtime, size) of each file: changes whenever any process writes one."""
        result = []
        for name in _FILES:
            try:
                st = (self.home / name).stat()
                result.append((st.st_mtime_ns, st.st_size))
            except OSError:
                result.append((0, 0))
        return tuple(result)

    def set_aside_files(self) -> list[Path]:
        """Corrupt files set aside earlier, for status and doctor to report."""
        if not self.home.is_dir():
            return []
        return sorted(p for p in self.home.iterdir() if ".corrupt-" in p.name)

    def permission_problems(self) -> list[tuple[Path, int, int]]:
        """(path, actual mode, wanted mode) for the home and files others can reach.

        A symlink in the home is judged by the file it points to: that is what the store
        reads secrets from. ``path.chmod(wanted)`` (which follows the link) fixes either.
        Dangling links and links to directories are left alone.
        """
        found = []
        if self.home.is_dir():
            mode = stat.S_IMODE(self.home.stat().st_mode)
            if mode & 0o077:
                found.append((self.home, mode, 0o700))
            for path in sorted(self.home.iterdir()):
                try:
                    st = path.stat()  # follows a symlink to its target
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    mode = stat.S_IMODE(st.st_mode)
                    if mode & 0o077:
                        found.append((path, mode, 0o600))
        return found
