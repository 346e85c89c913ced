"""A real redis-server on a loopback port, for the team state's tests and benchmarks.

Not a stand-in: Debian's redis-server (`.ci/run` installs it), started in a directory
of its own, without persistence, and killed when done; ``stop()`` then ``start()``
again on the same port stands for a server lost and back.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["REDIS", "RedisServer", "free_port"]

REDIS = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process; ``stop()`` and ``start()`` again on the same port."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        assert REDIS is not None
        self.proc = subprocess.Popen(
            [
                REDIS,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):  # bounded by tries: up to ~10 s on a loaded machine
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def dump(self) -> list[bytes]:
        """Every key and value in the server, as raw bytes."""
        import redis

        def raw(value: bytes | str | None) -> bytes:
            return value.encode() if isinstance(value, str) else (value or b"")

        client = redis.Redis.from_url(self.url)
        out: list[bytes] = []
        for key in client.scan_iter(count=1000):
            out.append(raw(key))
            kind = client.type(key)
            if kind == b"string":
                out.append(raw(client.get(key)))
            elif kind == b"hash":
                for k, v in client.hgetall(key).items():
                    out += [raw(k), raw(v)]
        client.close()
        return out
