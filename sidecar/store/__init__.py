"""The credential store: profiles, the key pool and the shared rotation state.

All three live as JSON files in the sidecar's home (see :mod:`sidecar.paths`)
and change only inside :meth:`Store.transaction`, which holds one
cross-process lock, re-reads the files inside it, and atomically writes back
the ones that changed. Reads outside a transaction need no lock.

Anything at a file's path the store cannot use (not JSON, the wrong shape, too
large, a FIFO, a device, a link to one) is set aside as ``<name>.corrupt-<time>``
before anything is written, byte for byte (a link as a link), reported in
``problems``, and treated as empty; the other files keep working. A file that
cannot be read at all (permission denied) is not moved: it is reported, and any
change to it is refused, so it is never replaced by an empty one.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from sidecar import paths
from sidecar.errors import StoreError
from sidecar.store._cache import DocCache, clone, clone_doc
from sidecar.store._data import StoreData
from sidecar.store._jsonfile import (
    CorruptFile,
    read_json,
    read_json_stat,
    remove_stale_temp_files,
    set_aside,
    write_json_atomic,
)
from sidecar.store._lock import LockTimeout, StoreLock
from sidecar.store.safefile import kind_of

if TYPE_CHECKING:
    from sidecar.store._watch import StoreChanges

__all__ = ["Store", "StoreData"]

_FILES = (paths.CREDENTIALS_FILE, paths.POOL_FILE, paths.STATE_FILE)
# A file that does not parse is read again this often, this far apart, before it is
# set aside: long enough for an editor's truncate-then-write to finish.
SETTLE_TRIES, SETTLE_WAIT = 5, 0.04
_ATTRS = ("credentials", "pool_doc", "state")
LOCK_TIMEOUT = 15.0  # seconds; every hold is a few milliseconds of file I/O

# What _load does with a corrupt file: raise (a lock-free read, to retry under the
# lock), set it aside (under the lock), or only report it (when the lock is unusable).
Corrupt = Literal["raise", "set_aside", "report"]
T = TypeVar("T")


class Store:
    def __init__(self, home: Path) -> None:
        self.home = home
        self._lock: StoreLock | None = None
        self._home_checked = False
        self._cache = DocCache()

    @classmethod
    def default(cls) -> Store:
        return cls(paths.home())

    # -- reading ----------------------------------------------------------------

    def read(self) -> StoreData:
        """A snapshot of the three documents, without taking the lock."""
        self.check_home()
        try:
            return self._load("raise")[0]
        except CorruptFile:
            pass
        # Setting the file aside changes the directory: do it under the lock, where
        # _load re-checks it. Should the lock be unusable, still answer (status must
        # work to say what is wrong), moving nothing.
        try:
            with self._locked():
                return self._load("set_aside")[0]
        except StoreError:  # the reason is a finding of its own (lock_problem, the home)
            return self._load("report")[0]

    def peek(self) -> StoreData | None:
        """What :meth:`read` would give, from the documents parsed before alone: None
        where read() would go to the disk (a file changed since, or never read) or take
        the lock. A few ``stat`` calls and nothing that waits: for an event loop's hot
        path, which falls back to read() in a worker thread on None."""
        docs = self.held()
        if docs is None:
            return None
        data = StoreData()
        for name, attr, doc in zip(_FILES, _ATTRS, docs, strict=True):
            if doc is not None:  # None: absent, the empty document, as read() has it
                setattr(data, attr, clone_doc(name, doc))
        return data

    def held(self) -> tuple[dict[str, Any] | None, ...] | None:
        """The parsed documents :meth:`peek` answers from, shared (never mutate them),
        None for a file that is absent; None where peek() would be None. The same
        objects as an earlier call (``is``) mean the same files: what was derived from
        them still holds."""
        if not self._home_checked:
            return None
        docs: list[dict[str, Any] | None] = []
        for name in _FILES:
            try:
                st = os.stat(self.home / name)
            except FileNotFoundError:
                docs.append(None)
                continue
            except OSError:
                return None
            doc = self._cache.get(name, st) if stat.S_ISREG(st.st_mode) else None
            if doc is None:
                return None
            docs.append(doc)
        return tuple(docs)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StoreData]:
        """Lock, re-read, let the caller change the data, write what changed.

        Blocking (the lock wait and the file I/O): code on an event loop runs the
        whole transaction in a worker thread. Threads may share one Store.
        """
        with self._locked():
            data, unreadable, before = self._load("set_aside")
            yield data
            docs = [getattr(data, attr) for attr in _ATTRS]
            # Compared as trees, not serialized: at 1,000 keys two dumps per file per
            # transaction cost more than the write.
            changed = [i for i in range(len(_FILES)) if docs[i] != before[i]]
            for i in changed:
                # Its content is unknown, so what we hold is not it: writing would
                # replace it. Checked before the first write: all or nothing.
                if _FILES[i] in unreadable:
                    raise StoreError(f"{unreadable[_FILES[i]]}; nothing was saved")
            if changed:
                # A writer killed mid-write left its temporary file: nobody else can be
                # writing now (we hold the lock), so any one here is stale.
                remove_stale_temp_files(self.home, _FILES)
            for i in changed:
                path = self.home / _FILES[i]
                # Kept for the next read: the caller may go on mutating ``data``.
                doc = clone_doc(_FILES[i], docs[i])
                self._cache.forget(_FILES[i])
                try:
                    st = write_json_atomic(path, doc)
                except OSError as exc:
                    raise StoreError(f"cannot write {path}: {exc.strerror}") from exc
                self._cache.wrote(_FILES[i], st, doc)

    def _load(
        self, corrupt: Corrupt
    ) -> tuple[StoreData, dict[str, str], list[dict[str, Any] | None]]:
        """The documents (copies, the caller's to change); the files that could not be
        read at all (name → why); and the documents as read, to tell what changed."""
        data = StoreData()
        unreadable: dict[str, str] = {}
        before: list[dict[str, Any] | None] = []
        for name, attr in zip(_FILES, _ATTRS, strict=True):
            # A missing file reads as the empty document (a copy: the caller changes data's).
            before.append(clone(getattr(data, attr)))
            path = self.home / name
            try:
                try:
                    doc = self._read_doc(name, path)
                except CorruptFile as exc:
                    if corrupt != "set_aside" or not exc.unparsed:
                        raise
                    doc = self._read_settled(name, path, exc)
            except CorruptFile as exc:
                if corrupt == "raise":
                    raise
                if corrupt == "report":
                    data.problems.append(
                        f"{exc.path}: {exc.problem}; not set aside while the store cannot"
                        " be locked; nothing is written over it"
                    )
                    continue
                try:
                    moved = set_aside(path)
                except OSError as err:
                    # Left where it is, it must not be overwritten: stop here.
                    raise StoreError(
                        f"{path}: {exc.problem}, and it cannot be set aside: {err.strerror}"
                    ) from err
                data.problems.append(
                    f"{exc.path}: {exc.problem}; set aside as {moved.name}: inspect it,"
                    " then delete it"
                )
                continue
            except OSError as exc:
                why = f"cannot read {path}: {exc.strerror}; fix its owner or mode"
                unreadable[name] = why
                data.problems.append(why)
                continue
            if doc is not None:
                before[-1] = doc
                setattr(data, attr, clone_doc(name, doc))
        return data, unreadable, before

    def _read_settled(self, name: str, path: Path, first: CorruptFile) -> dict[str, Any] | None:
        """Read again a file that did not parse, before it is set aside as corrupt.

        Our own writes are atomic, but a user's editor, a script or another tool may
        truncate the file and then write it: read in between, a good file looks
        corrupt, and setting it aside would take the user's credentials out of use.
        A file still unparsable after a short while is corrupt.
        """
        for _ in range(SETTLE_TRIES):
            time.sleep(SETTLE_WAIT)
            try:
                return self._read_doc(name, path)
            except CorruptFile as exc:
                first = exc
        raise first

    def _read_doc(self, name: str, path: Path) -> dict[str, Any] | None:
        """The parsed document at ``path`` (shared: never mutate it); None when absent."""
        try:
            st = os.stat(path)
        except OSError:
            st = None  # read_json_stat says what is wrong, if anything
        if st is not None and stat.S_ISREG(st.st_mode):
            cached = self._cache.get(name, st)
            if cached is not None:
                return cached
        try:
            doc, st = read_json_stat(path)
        except BaseException:
            self._cache.forget(name)
            raise
        if doc is None or st is None:
            self._cache.forget(name)
            return None
        self._cache.read(name, st, doc)
        return doc

    # -- locking ----------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.ensure_home()
        self.check_home()
        problem = self.lock_problem()
        if problem:
            raise StoreError(problem)
        if self._lock is None:
            # flock-based: a lock held by a process that died is released by the kernel.
            self._lock = StoreLock(self.home / paths.LOCK_FILE, timeout=LOCK_TIMEOUT)
        try:
            with self._lock.held():
                yield
        except LockTimeout as exc:
            raise StoreError(
                f"the store at {self.home} stayed locked for {LOCK_TIMEOUT:.0f} s"
            ) from exc

    def check_home(self) -> None:
        """On first use, make an existing home private, or refuse someone else's."""
        if not self._home_checked:
            paths.secure_home(self.home)
            self._home_checked = True

    def lock_problem(self) -> str | None:
        """What is wrong with ``.lock``, naming the fix; None when it can be used.

        Opening a link would lock (and truncate) its target, and a FIFO or a directory
        can never be locked: every write would wait on it and fail.
        """
        path = self.home / paths.LOCK_FILE
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"cannot check {path}: {exc.strerror}"
        if stat.S_ISREG(mode):
            return None
        what = "a symbolic link" if stat.S_ISLNK(mode) else kind_of(mode)
        return (
            f"{path} is {what}, not the store's lock file, so nothing can be saved:"
            " remove it (`llm-sidecar doctor --fix` does)"
        )

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

    def changes(self) -> StoreChanges:
        """A waiter woken when any process changes the store's files."""
        from sidecar.store._watch import StoreChanges

        return StoreChanges(self.home, _FILES)

    def set_aside_files(self) -> list[Path]:
        """Corrupt files set aside earlier, for status and doctor to report."""
        try:
            return sorted(p for p in self.home.iterdir() if ".corrupt-" in p.name)
        except OSError:  # no home yet, or one we cannot list: reported elsewhere
            return []

    def permission_problems(self) -> list[tuple[Path, int, int]]:
        """(path, actual mode, wanted mode) for the home and files others can reach.

        A symlink in the home is judged by the file it points to: that is what the store
        reads secrets from. ``path.chmod(wanted)`` (which follows the link) fixes either.
        Dangling links and links to directories are left alone.
        """
        found: list[tuple[Path, int, int]] = []
        try:
            home_mode = self.home.stat().st_mode
            entries = sorted(self.home.iterdir()) if stat.S_ISDIR(home_mode) else []
        except OSError:
            return found
        if stat.S_ISDIR(home_mode):
            mode = stat.S_IMODE(home_mode)
            if mode & 0o077:
                found.append((self.home, mode, 0o700))
            for path in entries:
                try:
                    st = path.stat()  # follows a symlink to its target
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    mode = stat.S_IMODE(st.st_mode)
                    if mode & 0o077:
                        found.append((path, mode, 0o600))
        return found

    # -- a file of the home beside the store's own ---------------------------------

    def read_or_create(
        self,
        name: str,
        valid: Callable[[dict[str, Any]], bool],
        create: Callable[[], dict[str, Any]],
    ) -> dict[str, Any]:
        """The JSON object in the home's file ``name`` if ``valid`` accepts it, else one
        made by ``create`` and written (0600, atomically) under the store's lock.

        Re-read under the lock: two processes starting at once agree on one document
        (the gateway's token). A file the store cannot use is set aside, as its own are.
        """
        path = self.home / name
        if self.home.is_dir():
            with contextlib.suppress(CorruptFile):
                doc = read_json(path)
                if doc is not None and valid(doc):
                    return doc
        with self._locked():
            try:
                doc = read_json(path)
            except CorruptFile:
                set_aside(path)
                doc = None
            if doc is not None and valid(doc):
                return doc
            doc = create()
            write_json_atomic(path, doc)  # mkstemp: 0600 from the start
            return doc

    def read_file(self, name: str) -> dict[str, Any] | None:
        """The JSON object in the home's file ``name`` (one beside the store's own), or
        None when it is absent; read without the lock, never moved. StoreError, naming
        the file, when it cannot be read or used."""
        if not self.home.is_dir():
            return None
        path = self.home / name
        try:
            return read_json(path)
        except CorruptFile as exc:
            raise StoreError(f"{path}: {exc.problem}") from None
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror}") from None

    def update_file(self, name: str, change: Callable[[dict[str, Any]], T]) -> T:
        """Let ``change`` edit the JSON object in the home's file ``name`` under the store's
        lock, then write it (0600, atomically) if it changed; ``change``'s return value.

        A file the store cannot use is set aside first, as its own are; one it cannot
        read at all (permission denied) is refused, so it is never replaced.
        """
        path = self.home / name
        with self._locked():
            try:
                doc = read_json(path)
            except CorruptFile:
                set_aside(path)
                doc = None
            except OSError as exc:
                raise StoreError(f"cannot read {path}: {exc.strerror}; nothing was saved") from exc
            before = clone(doc) if doc is not None else None
            doc = doc if doc is not None else {}
            result = change(doc)
            if doc != before:
                try:
                    write_json_atomic(path, doc)
                except OSError as exc:
                    raise StoreError(f"cannot write {path}: {exc.strerror}") from exc
            return result
