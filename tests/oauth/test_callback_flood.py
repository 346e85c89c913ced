"""A flood of idle connections to the login callback, with raw sockets, over stdio.

Anything on the machine can connect to the loopback callback. Idle sockets must not
pile up in the sidecar (each one is a file handle: enough of them and every accept,
every provider connection and every file open fails), and the real browser must
still get through.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sidecar.fake import FakeProvider
from sidecar.oauth._callback import MAX_CONNECTIONS
from tests.oauth.support import port_of, sidecar_env, stored
from tests.reliability.support import RawServer

FLOOD = 200  # far over MAX_CONNECTIONS, far under this test's own file limit


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the other end closed ``sock`` (without waiting for it)."""
    sock.settimeout(None)  # a socket with a timeout would wait for data before recv
    try:
        return sock.recv(1, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:  # reset: the server aborted it
        return True


def http_status(port: int, target: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n".encode())
        return int(sock.makefile("rb").readline().split()[1])


@pytest.fixture
def flood() -> Iterator[list[socket.socket]]:
    sockets: list[socket.socket] = []
    yield sockets
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.close()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts file handles in /proc")
def test_a_flood_of_idle_connections_is_bounded_and_the_browser_still_gets_through(
    home: Path, fake: FakeProvider, flood: list[socket.socket]
) -> None:
    with RawServer(home, env=sidecar_env(fake)) as server:
        server.initialize()
        started = server.request("sidecar/login", {"provider": "anthropic"})["result"]
        port = port_of(started["url"])
        pid = server.proc.pid
        before = open_fds(pid)

        for _ in range(FLOOD):
            flood.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        # Answered after the sidecar accepted every socket above (it accepts in order).
        assert http_status(port, "/") == 404

        # The sidecar holds at most MAX_CONNECTIONS of them; the rest were closed.
        assert open_fds(pid) <= before + MAX_CONNECTIONS + 2
        dropped = sum(closed_by_peer(sock) for sock in flood)
        assert dropped >= FLOOD - MAX_CONNECTIONS
        server.probe()  # stdio keeps serving

        # The browser's callback still goes through, and the login completes.
        with httpx.Client(follow_redirects=True, timeout=10) as browser:
            assert browser.get(started["url"]).status_code == 200
        server.collect_until(lambda m: "logged in" in str(m.get("params", {})), 10)
        assert stored(home)
        assert "Traceback" not in server.stderr_text()
