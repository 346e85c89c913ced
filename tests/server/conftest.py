"""An editor-like client for end-to-end tests: the real server over stdio."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from pytest_lsp.client import register_lsp_features

from sidecar.fake import FakeProvider
from sidecar.fake.editor_client import raw_client_converter
from tests.conftest import leaked

PROFILES = ["visual-studio-code", "neovim"]


class SidecarClient(LanguageClient):
    """A test client that records every message and every sidecar notification."""

    def __init__(self) -> None:
        super().__init__(converter_factory=raw_client_converter)
        self.wire: list[str] = []
        self.statuses: list[dict[str, Any]] = []
        self.deltas: list[dict[str, Any]] = []
        self.logins: list[dict[str, Any]] = []  # sidecar/didEndLogin
        self._changed = asyncio.Event()
        original = self.protocol.handle_message

        def spy(message: Any) -> None:
            self.wire.append(repr(message))
            original(message)

        self.protocol.handle_message = spy  # type: ignore[method-assign]

        @self.feature("sidecar/didChangeStatus")
        def on_status(params: Any) -> None:
            self.statuses.append(params)
            self._changed.set()

        @self.feature("sidecar/didEndLogin")
        def on_login(params: Any) -> None:
            self.logins.append(params)
            self._changed.set()

        @self.feature("sidecar/streamDelta")
        def on_delta(params: Any) -> None:
            self.deltas.append(params)
            self._changed.set()

    async def request(self, method: str, params: Any) -> Any:
        """Send a request; the result as a dict. JSON-RPC errors raise JsonRpcException."""
        return await asyncio.wait_for(self.protocol.send_request_async(method, params), 15)

    async def wait_status(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0, after: int = 0
    ) -> dict[str, Any]:
        """The first status notification matching ``predicate``, among those
        received after the first ``after`` ones or still to come."""
        return await self._wait(self.statuses, predicate, timeout, after)

    async def wait_login(self, login_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The ``sidecar/didEndLogin`` of login ``login_id``, received or still to come."""
        return await self._wait(self.logins, lambda e: e["loginId"] == login_id, timeout, 0)

    async def _wait(
        self,
        seen_list: list[dict[str, Any]],
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float,
        after: int,
    ) -> dict[str, Any]:
        async def scan() -> dict[str, Any]:
            seen = after
            while True:
                for item in seen_list[seen:]:
                    if predicate(item):
                        return item
                seen = len(seen_list)
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(scan(), timeout)


def make_client() -> SidecarClient:
    client = SidecarClient()
    register_lsp_features(client)
    return client


def server_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if "_API_KEY" not in k and not k.startswith("LLM_SIDECAR") and not k.endswith("_TOKEN")
    }
    env["LLM_SIDECAR_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    return {**env, **(extra or {})}


async def start_sidecar(
    home: Path, profile: str = "visual-studio-code", env: dict[str, str] | None = None
) -> SidecarClient:
    config = ClientServerConfig(
        server_command=[sys.executable, "-m", "sidecar"],
        server_env=server_env(home, env),
        client_factory=make_client,
    )
    client = await config.start()
    assert isinstance(client, SidecarClient)
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities(profile),
            initialization_options={"editorInfo": {"name": profile, "version": "test"}},
        )
    )
    return client


async def stop_sidecar(client: SidecarClient) -> None:
    try:
        await asyncio.wait_for(client.shutdown_session(), 10)
    finally:
        await client.stop()
    found = leaked("\n".join(client.wire))
    assert not found, f"{len(found)} test key(s) appeared in JSON-RPC messages"


@pytest_asyncio.fixture(params=PROFILES)
async def sidecar(request: pytest.FixtureRequest, home: Path) -> AsyncIterator[SidecarClient]:
    """The real sidecar on an empty home, as the VS Code or the Neovim client starts it."""
    client = await start_sidecar(home, request.param, getattr(request, "env", None))
    yield client
    await stop_sidecar(client)


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    """The provider stand-in on 127.0.0.1, both API flavours."""
    with FakeProvider() as fake:
        yield fake


@pytest_asyncio.fixture
async def editor(home: Path, fake: FakeProvider) -> AsyncIterator[SidecarClient]:
    """The real sidecar, pointed at :func:`fake` for Anthropic and OpenAI alike."""
    client = await start_sidecar(
        home, env={"ANTHROPIC_BASE_URL": fake.url, "OPENAI_BASE_URL": fake.url + "/v1"}
    )
    yield client
    await stop_sidecar(client)
