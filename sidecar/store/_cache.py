"""The parsed documents of the store, kept against the identity of the file they came from.

Every status, acquire and transaction used to re-read, re-parse and re-check each
file: at 1,000 keys that was most of their cost. A document is reused while the
file at its path is the same file (device, inode) with the same size, mtime and
ctime. Every writer replaces the file by renaming a new one over it, so a write by
any process gives a new inode; a file rewritten in place changes its mtime.

Racy case: file timestamps tick coarsely (a few ms), so a file rewritten in place
within the tick it was read in can keep its stamp. A document read from a file
younger than :data:`RACY_SECONDS` is therefore not kept (the next read parses it
again); one this process has just written is kept, since only a rename (a new
inode) can replace it while the lock is held, and later writers rename too.

Callers get copies (:func:`clone`): the documents are mutated freely by the rotation
rules, and the cached ones are shared by every thread of the process.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from sidecar.paths import POOL_FILE

__all__ = ["RACY_SECONDS", "DocCache", "clone", "clone_doc"]

RACY_SECONDS = 0.1  # far longer than any filesystem's timestamp tick

FileKey = tuple[int, int, int, int, int]


def _key(st: os.stat_result) -> FileKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def clone(value: Any) -> Any:
    """A deep copy of a JSON tree; about three times faster than ``copy.deepcopy``."""
    kind = type(value)
    if kind is dict:
        return {k: clone(v) for k, v in value.items()}
    if kind is list:
        return [clone(v) for v in value]
    return value


def clone_doc(name: str, doc: Any) -> Any:
    """A copy of the store's document ``name`` that its caller may change.

    The pool's entries are shared, not copied: nothing edits an entry in place (a
    changed credential replaces its entry, see :mod:`sidecar.store._data`), and at
    1,000 keys copying them cost more than everything else a read does. The lists and
    maps that hold them are copied, so adding, removing or replacing entries is safe.
    """
    if name != POOL_FILE or type(doc) is not dict:
        return clone(doc)
    copied: dict[str, Any] = {}
    for k, v in doc.items():
        if k == "pools" and type(v) is dict:
            copied[k] = {p: list(e) if type(e) is list else clone(e) for p, e in v.items()}
        else:
            copied[k] = clone(v)
    return copied


class DocCache:
    def __init__(self) -> None:
        self._docs: dict[str, tuple[FileKey, dict[str, Any]]] = {}
        self._guard = threading.Lock()

    def get(self, name: str, st: os.stat_result) -> dict[str, Any] | None:
        """The document kept for ``name`` if ``st`` is still its file; never mutate it."""
        with self._guard:
            entry = self._docs.get(name)
        if entry is not None and entry[0] == _key(st):
            return entry[1]
        return None

    def read(self, name: str, st: os.stat_result, doc: dict[str, Any]) -> None:
        """Keep ``doc``, just parsed from the file ``st`` describes, unless too young."""
        if time.time() - st.st_mtime < RACY_SECONDS:
            self.forget(name)
            return
        with self._guard:
            self._docs[name] = (_key(st), doc)

    def wrote(self, name: str, st: os.stat_result, doc: dict[str, Any]) -> None:
        """Keep ``doc``, which this process has just written under the lock."""
        with self._guard:
            self._docs[name] = (_key(st), doc)

    def forget(self, name: str) -> None:
        with self._guard:
            self._docs.pop(name, None)
