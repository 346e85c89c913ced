"""The floor for start-up: a bare pygls server with one custom method.

Whatever llm-sidecar needs beyond this to answer ``initialize`` is its own cost.
"""

from __future__ import annotations

from typing import Any

from pygls.lsp.server import LanguageServer

server = LanguageServer("bench-floor", "0")


@server.feature("floor/echo")
async def echo(ls: LanguageServer, params: Any) -> Any:
    return {"ok": True}


if __name__ == "__main__":
    server.start_io()
