"""The store's cross-process lock: ``flock`` on ``.lock``, waited for without polling.

A lock library that polls (try, sleep 50 ms, try again) makes every contended
acquisition cost a whole sleep although the holder keeps the lock ~1 ms. Here an
uncontended lock is taken with one non-blocking ``flock``; a contended one is waited
for by a blocking ``flock`` in a helper thread, so it is granted the moment the
holder lets go, and the caller can still give up after ``timeout`` (a blocking
``flock`` itself cannot time out). Callers that must keep an event loop answering
run the whole transaction in a worker thread (see ``Store.transaction``).

``flock`` locks belong to an open file: a holder killed with ``kill -9`` releases
it at once, and two threads of one process exclude each other as two processes do
(each acquisition opens the file anew). A re-entrant acquisition on the same thread
reuses the open file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LockTimeout", "StoreLock"]


class LockTimeout(Exception):
    """Another holder kept the lock longer than the timeout."""


class StoreLock:
    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._local = threading.local()  # (fd, depth) of this thread's hold

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        fd = self._acquire()
        self._local.depth = 1
        try:
            yield
        finally:
            self._local.depth = 0
            os.close(fd)  # closing the file releases the flock

    def _acquire(self) -> int:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            pass
        except BaseException:
            os.close(fd)
            raise
        return _wait_for(fd, self.timeout)


def _wait_for(fd: int, timeout: float) -> int:
    """Block in a helper thread until ``fd`` is locked; give up after ``timeout``."""
    granted = threading.Event()
    guard = threading.Lock()
    outcome: dict[str, object] = {}

    def wait() -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            outcome["error"] = exc
        with guard:
            if outcome.get("abandoned"):
                os.close(fd)  # the caller has gone: let the lock go at once
                return
            granted.set()

    threading.Thread(target=wait, name="store-lock-wait", daemon=True).start()
    if not granted.wait(timeout):
        with guard:
            if not granted.is_set():
                outcome["abandoned"] = True
                raise LockTimeout
    error = outcome.get("error")
    if isinstance(error, OSError):
        os.close(fd)
        raise error
    return fd
