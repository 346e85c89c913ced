"""The streaming path is built after start-up, in the background, not by the first stream."""

from __future__ import annotations

from pathlib import Path

from sidecar.rotation.keypool import KeyPool
from sidecar.rpc.server import create_server
from sidecar.store import Store


async def test_warm_up_builds_the_engine_the_first_stream_then_uses(home: Path) -> None:
    server = create_server(KeyPool(Store(home), environ={}))
    assert server._engine is None  # nothing of it before initialized
    await server.warm_up()
    engine = server._engine
    assert engine is not None and engine._client is not None  # the HTTP client, too
    assert server.engine is engine  # the first stream finds it ready
    await engine.aclose()


async def test_a_stream_that_came_first_keeps_its_engine(home: Path) -> None:
    server = create_server(KeyPool(Store(home), environ={}))
    first = server.engine  # a stream arrived before the warm-up ended
    await server.warm_up()
    assert server.engine is first
    await first.aclose()
