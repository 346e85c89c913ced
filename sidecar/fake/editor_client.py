"""A minimal editor-side client: spawns the sidecar over stdio, as an editor does.

Used by ``llm-sidecar demo`` and the benchmarks. Params and results stay
plain dicts, as any editor sees them on the wire.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pygls.protocol import JsonRPCNotification, JsonRPCResponseMessage, default_converter

from sidecar import __version__

__all__ = ["EditorClient", "raw_client_converter"]

Listener = Callable[[dict[str, Any]], None]


def raw_client_converter() -> Any:
    """pygls's converter for a client: notifications and results stay plain dicts."""
    converter = default_converter()  # type: ignore[no-untyped-call]

    def keep_raw(obj: dict[str, Any], cls: type) -> Any:
        return cls(**obj)

    converter.register_structure_hook(JsonRPCNotification, keep_raw)
    converter.register_structure_hook(JsonRPCResponseMessage, keep_raw)
    return converter


def _handler(listener: Listener | None) -> Callable[[dict[str, Any]], None]:
    # pygls tags the function it registers, so each needs a function of its own.
    def handle(params: dict[str, Any]) -> None:
        if listener is not None:
            listener(params)

    return handle


class EditorClient:
    """``async with EditorClient(env) as editor: await editor.request(...)``."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        command: list[str] | None = None,
        on_status: Listener | None = None,
        on_delta: Listener | None = None,
    ) -> None:
        self.env = dict(env)
        self.command = command or [sys.executable, "-m", "sidecar"]
        self._client = LanguageClient(
            "llm-sidecar-editor-client", __version__, converter_factory=raw_client_converter
        )
        for method, listener in (
            ("sidecar/didChangeStatus", on_status),
            ("sidecar/streamDelta", on_delta),
        ):
            self._client.feature(method)(_handler(listener))

    async def __aenter__(self) -> EditorClient:
        await self._client.start_io(*self.command, env=self.env)
        await self._client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(
                    window=types.WindowClientCapabilities(
                        show_document=types.ShowDocumentClientCapabilities(support=True)
                    )
                ),
                initialization_options={
                    "editorInfo": {"name": "llm-sidecar editor client", "version": __version__}
                },
            )
        )
        self._client.initialized(types.InitializedParams())
        return self

    async def request(self, method: str, params: Any, timeout: float = 120.0) -> Any:
        return await asyncio.wait_for(
            self._client.protocol.send_request_async(method, params), timeout
        )

    @property
    def pid(self) -> int | None:
        server = getattr(self._client, "_server", None)
        return getattr(server, "pid", None)

    async def __aexit__(self, *exc: object) -> None:
        try:
            await asyncio.wait_for(self._client.shutdown_async(None), 5)
            self._client.exit(None)
        except Exception:
            pass
        await self._client.stop()  # type: ignore[no-untyped-call]
