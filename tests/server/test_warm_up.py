"""The streaming path is built after start-up, in the background, not by the first stream."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sidecar.fake import FakeProvider, Reply
from sidecar.rpc.server import create_server
from sidecar.settings import Settings


async def test_warm_up_builds_the_engine_the_first_stream_then_uses(home: Path) -> None:
    server = create_server(Settings.load(home, {}))
    assert server._engine is None  # nothing of it before initialized
    await server.warm_up()
    engine = server._engine
    assert engine is not None and engine._client is not None  # the HTTP client, too
    assert server.engine is engine  # the first stream finds it ready
    await engine.aclose()


async def test_a_stream_that_came_first_keeps_its_engine(home: Path) -> None:
    server = create_server(Settings.load(home, {}))
    first = server.engine  # a stream arrived before the warm-up ended
    await server.warm_up()
    assert server.engine is first
    await first.aclose()


# In a process of its own: what the first stream imports after the warm-up, which the
# user would wait for (the test process has imported everything already).
FIRST_STREAM = """
import asyncio, json, sys
from pathlib import Path
from sidecar.providers import StreamRequest
from sidecar.rpc.server import create_server
from sidecar.settings import Settings

async def main(home, url):
    env = {"ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": sys.argv[3]}
    server = create_server(Settings.load(Path(home), env))
    await server.warm_up()
    before = set(sys.modules)
    ask = StreamRequest(model="claude-sonnet-4-5", max_tokens=8,
        messages=[{"role": "user", "content": "hi"}])
    await server.engine.stream("anthropic", ask)
    print(json.dumps(sorted(set(sys.modules) - before)))
    await server.engine.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_the_first_stream_after_the_warm_up_imports_nothing(
    home: Path, make_key: Callable[..., str]
) -> None:
    key = make_key()
    with FakeProvider() as fake:
        fake.script(key, [], default=Reply("ok"))
        env = {"LLM_SIDECAR_HOME": str(home), "PATH": "/usr/bin:/bin"}
        ran = subprocess.run(
            [sys.executable, "-c", FIRST_STREAM, str(home), fake.url, key],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert json.loads(ran.stdout) == []
