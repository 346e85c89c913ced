"""A gateway on 127.0.0.1 in a thread, pointed at the fake, on a test home."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from sidecar.fake import FakeProvider
from sidecar.gateway._app import make_app, serve
from sidecar.gateway._proxy import Proxy
from sidecar.gateway._token import gateway_token
from sidecar.gateway._upstream import upstream
from sidecar.rotation.keypool import KeyPool
from sidecar.settings import Settings
from sidecar.store import Store
from sidecar.timeouts import Timeouts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _never_refresh(cred: object) -> object:
    raise AssertionError("no OAuth refresh expected")


async def _as_is(cred: object) -> object:
    return cred


class Gateway:
    """The gateway's app served by aiohttp in its own thread and event loop."""

    def __init__(self, home: Path, env: dict[str, str], max_body: int = 1024 * 1024) -> None:
        self.home = home
        self.store = Store(home)
        self.token = gateway_token(self.store)
        # As the gateway's run builds them; a read timeout short enough for the tests.
        self.settings = attrs.evolve(Settings.load(home, env), timeouts=Timeouts(read=10.0))
        self.keypool = KeyPool(self.store, self.settings.env)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.max_body = max_body
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with upstream(self.settings.timeouts) as session:
            proxy = Proxy(
                self.keypool,
                session,
                settings=self.settings,
                refresher=_never_refresh,  # type: ignore[arg-type]
                ensure_fresh=_as_is,  # type: ignore[arg-type]
                max_cooldown_wait=0.0,
            )
            app = make_app(proxy, token=self.token, port=self.port, max_body=self.max_body)
            task = asyncio.create_task(
                serve(app, "127.0.0.1", self.port, stop=self._stop, grace=0.5)
            )
            # Ready once the port answers.
            for _ in range(200):
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    writer.close()
                    break
                except OSError:
                    await asyncio.sleep(0.02)
            self._ready.set()
            await task

    def start(self) -> Gateway:
        self._thread.start()
        assert self._ready.wait(10), "the gateway did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)

    def add_keys(self, provider: str, keys: list[str]) -> None:
        for key in keys:
            self.keypool.add_key(provider, key)

    def headers(self) -> dict[str, str]:
        return {"x-api-key": self.token}


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture
def gateway(home: Path, fake: FakeProvider) -> Iterator[Gateway]:
    env = {
        "ANTHROPIC_BASE_URL": fake.url,
        "OPENAI_BASE_URL": f"{fake.url}/v1",
        "AZURE_OPENAI_BASE_URL": fake.url,
    }
    gw = Gateway(home, env).start()
    try:
        yield gw
    finally:
        gw.stop()


def start_gateway(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], str]:
    """``llm-sidecar gateway ARGS`` in the background, once it says it listens; and what
    it wrote to stderr until then."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "gateway", *args],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    said = ""
    for _ in range(100):  # the "listening" line, or the process ended
        line = proc.stderr.readline()
        said += line
        if "gateway listening" in line or not line:
            break
    assert "gateway listening" in said, said
    return proc, said
