"""A real Redis server on a loopback port, started and stopped by the tests (no mock).

`.ci/run` installs Debian's redis-server; without it these tests skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.fake import FakeProvider
from sidecar.fake.redis_server import REDIS, RedisServer, free_port

__all__ = ["REDIS", "RedisServer", "fake", "free_port", "redis_server"]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if REDIS is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    server = RedisServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    """The provider stand-in on 127.0.0.1."""
    with FakeProvider() as fake:
        yield fake
