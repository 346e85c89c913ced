"""Waking up when another process changes the store, without polling where possible.

Every sidecar of the user shares the store; each must show a change made by
another within a few milliseconds, yet an idle editor should not wake its sidecar
twice a second. On Linux the home directory is watched with inotify
(``inotify_simple``: a thin ctypes wrapper, no threads, its file descriptor read by
the event loop): every store write renames a finished file into place, which
inotify reports at once. A home that does not exist yet is waited for by watching
its parent for its creation. Elsewhere, or when no watch can be set up (no parent
either, no inotify instances left), the caller's poll interval is used instead,
and the watch is tried again at each poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inotify_simple import INotify

__all__ = ["StoreChanges"]

log = logging.getLogger(__name__)


class StoreChanges:
    """``await changes.wait(poll, idle)`` returns soon after one of ``names`` changes."""

    def __init__(self, home: Path, names: tuple[str, ...]) -> None:
        self.home = home
        self.names = frozenset(names)
        self._inotify: INotify | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()
        self._watching_parent = False  # the home is missing: waiting for its creation

    @property
    def notified(self) -> bool:
        """Whether changes are reported by the platform (else the caller polls)."""
        return self._inotify is not None

    async def wait(self, poll: float, idle: float) -> None:
        """Until a change is reported, or ``idle`` seconds pass; ``poll`` without a watch."""
        if self._inotify is None:
            if self._start():
                # A fresh watch: whatever changed before it was set up raised no event,
                # so the caller looks once now.
                return
            await asyncio.sleep(poll)
            return
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
        # lands as the event is set, and the feed then outlives the server's exit.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(idle):
                await self._changed.wait()
        self._changed.clear()

    def close(self) -> None:
        if self._inotify is not None:
            inotify, self._inotify = self._inotify, None
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(inotify.fileno())
            # Closing a watching inotify descriptor waits in the kernel for an RCU grace
            # period, 8-15 ms here: on the event loop (when the home appears with the
            # first write, often during the first stream) every stream would stall.
            threading.Thread(target=inotify.close, name="inotify-close", daemon=True).start()

    def _start(self) -> bool:
        """Set the watch up; whether it is now set up."""
        if not sys.platform.startswith("linux"):
            return False
        home = self.home.is_dir()
        if not home and not self.home.parent.is_dir():
            return False
        try:
            # Imported here: only a serving sidecar watches, never the CLI.
            from inotify_simple import INotify, flags

            inotify = INotify()
        except (ImportError, OSError) as exc:
            log.info("no file notifications (%s); polling the store", exc)
            return False
        mask = (
            flags.MOVED_TO  # a store write: a finished file renamed into place
            | flags.CLOSE_WRITE  # a file edited in place
            | flags.DELETE
            | flags.MOVED_FROM
            | flags.ATTRIB
            | flags.DELETE_SELF
            | flags.MOVE_SELF
        )
        if not home:
            mask = flags.CREATE | flags.MOVED_TO | flags.DELETE_SELF | flags.MOVE_SELF
        try:
            inotify.add_watch(self.home if home else self.home.parent, mask)
        except OSError as exc:
            inotify.close()
            log.info("cannot watch %s (%s); polling the store", self.home, exc.strerror)
            return False
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(inotify.fileno(), self._on_events)
        self._inotify = inotify
        self._watching_parent = not home
        if not home and self.home.is_dir():
            # Created between the check and the watch: its event was missed.
            self.close()
            self._changed.set()
        return self._inotify is not None

    def _on_events(self) -> None:
        if self._inotify is None:
            return
        from inotify_simple import flags

        try:
            events = self._inotify.read(timeout=0)
        except OSError:
            events = []
        gone = False
        for event in events:
            if event.mask & (flags.DELETE_SELF | flags.MOVE_SELF | flags.IGNORED):
                gone = True
            elif self._watching_parent:
                gone = gone or event.name == self.home.name  # the home appeared
            elif event.name in self.names:
                self._changed.set()
        if gone:
            # The watched directory went away, or the home appeared: watch afresh at
            # the next wait (whatever now exists), and look at the store now.
            self.close()
            self._changed.set()
