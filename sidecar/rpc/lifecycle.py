"""The LSP session lifecycle: what may be asked when, how the process ends.

LSP fixes the order ``initialize`` → ``initialized`` → … → ``shutdown`` → ``exit``.
pygls serves a request sent before ``initialize`` (so a ``sidecar/keyAdd`` would
write the store of a session that never began), drops every message after
``shutdown`` without an answer (the client waits forever), and loses ``exit``'s
exit code inside ``asyncio.run``. :class:`Lifecycle` answers those cases as LSP
says, and :func:`watch_process` ends the sidecar when the editor that started it
is gone, even if a grandchild still holds our stdin open.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
from collections.abc import Callable

__all__ = ["Lifecycle", "Phase", "watch_process"]

log = logging.getLogger(__name__)

SERVER_NOT_INITIALIZED = -32002  # LSP's ServerNotInitialized
INVALID_REQUEST = -32600
POLL_SECONDS = 0.2  # when pidfd is not available: well under the promised second


class Phase(enum.Enum):
    NEW = "new"  # before initialize
    RUNNING = "running"  # initialize received
    SHUT_DOWN = "shutDown"  # shutdown received: only exit is left


class Lifecycle:
    def __init__(self) -> None:
        self.phase = Phase.NEW
        self.exited = False  # exit was received

    @property
    def exit_code(self) -> int:
        # LSP: 0 when exit follows shutdown, 1 otherwise.
        return 0 if self.phase is Phase.SHUT_DOWN else 1

    def refuse(self, method: str, is_request: bool) -> tuple[int, str] | None:
        """The error a message gets in this phase, ``(code, message)``; None to serve it.

        Notifications that cannot be served are dropped (their caller does that
        on a non-None answer), as LSP asks; ``exit`` is always served.
        """
        if method == "exit":
            return None
        if self.phase is Phase.NEW and method != "initialize":
            return SERVER_NOT_INITIALIZED, "server not initialized: send initialize first"
        if self.phase is Phase.RUNNING and method == "initialize" and is_request:
            return INVALID_REQUEST, "invalid request: initialize was already received"
        if self.phase is Phase.SHUT_DOWN:
            return INVALID_REQUEST, "invalid request: the server is shutting down (send exit)"
        return None

    def accepted(self, method: str) -> None:
        """``method`` passed :meth:`refuse` and is being served."""
        if method == "initialize":
            self.phase = Phase.RUNNING
        elif method == "shutdown":
            self.phase = Phase.SHUT_DOWN
        elif method == "exit":
            self.exited = True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


async def watch_process(pid: int, on_gone: Callable[[], None]) -> None:
    """Call ``on_gone`` once process ``pid`` has ended; return at once if it never lived.

    A pidfd (Linux 5.3+) becomes readable the moment the process ends, zombie
    or not; elsewhere the process is polled. A ``processId`` that does not exist
    when the session starts is not watched: it is from another PID namespace
    (an editor outside the container we run in), not a dead parent.
    """
    if pid <= 0 or pid == os.getpid() or not _alive(pid):
        log.warning("processId %d is not a process here: not watching it", pid)
        return
    loop = asyncio.get_running_loop()
    fd: int | None = None
    with contextlib.suppress(AttributeError, OSError):
        fd = os.pidfd_open(pid)
    if fd is not None:
        ended: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not ended.done():
                ended.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await ended
        finally:
            loop.remove_reader(fd)
            os.close(fd)
    else:
        while _alive(pid):
            await asyncio.sleep(POLL_SECONDS)
    log.warning("the editor (process %d) is gone: exiting", pid)
    on_gone()
