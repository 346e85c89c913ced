"""A login's progress as the editor sees it: the page to open, then how it ended.

After the answer to ``sidecar/login`` the sidecar asks the editor to open the
sign-in page (``window/showDocument``). However the login ends (the browser's
callback, a paste, a cancel, a newer login for the profile, the timeout) the
editor gets one ``sidecar/didEndLogin`` saying so, and the provider's real status
follows when the login changed it. A failure nobody asked about (a callback, a
timeout) is also shown with ``window/showMessage``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from lsprotocol import types

if TYPE_CHECKING:
    from sidecar.oauth import Login, LoginEvent
    from sidecar.rpc.server import SidecarServer

__all__ = ["DID_END_LOGIN", "LoginProgress"]

log = logging.getLogger(__name__)

DID_END_LOGIN = "sidecar/didEndLogin"
SHOW_DOCUMENT_TIMEOUT = 60.0  # seconds to wait for the client to open a login page


class LoginProgress:
    def __init__(self, server: SidecarServer) -> None:
        self.server = server

    def ended(self, event: LoginEvent) -> None:
        """A login ended: tell the editor how, then show the status it left."""
        from sidecar.rpc import protocol

        server = self.server
        server.protocol.notify(DID_END_LOGIN, protocol.to_wire(protocol.login_ended(event)))
        server.feed.publish(event.provider)  # sent only if the login changed it
        if event.kind == "failed" and not event.answered:
            # Nobody asked for this outcome (a callback, a timeout): tell the user.
            server.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Error, message=f"llm-sidecar: {event.message}"
                )
            )

    async def announce(self, login: Login) -> None:
        """After the answer to ``sidecar/login``: ask the client to open the URL."""
        for _ in range(2):
            await asyncio.sleep(0)  # lets the answer go out first
        if login.result.done():
            return
        caps = self.server.client_capabilities
        show = caps.window.show_document if caps and caps.window else None
        if not (show and show.support):
            return
        params = types.ShowDocumentParams(uri=login.url, external=True)
        # Not send_request_async: its future is cancelled with the awaiting task, and the
        # client's late answer then raises InvalidStateError inside pygls (pygls #621).
        # The shield keeps pygls's own future alive whatever happens to this task.
        # Any answer ends the wait at once: a result, null (clients that do not
        # implement it) or an error; the URL is in the answer to sidecar/login anyway.
        future = self.server.protocol.send_request(types.WINDOW_SHOW_DOCUMENT, params)
        try:
            result = await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(future)), SHOW_DOCUMENT_TIMEOUT
            )
        except Exception as exc:
            log.info("showDocument answered: %s, the page was not opened", type(exc).__name__)
            return
        if isinstance(result, dict) and result.get("success") is True:
            log.info("showDocument answered: the page was opened")
        else:
            log.info("showDocument answered: the page was not opened")
