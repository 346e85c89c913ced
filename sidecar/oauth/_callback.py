"""The loopback end of a browser login: ``http://localhost:<port>/callback``.

Bound to 127.0.0.1 only, so nothing off this machine can reach it. It answers
one path, ``/callback``, and only requests whose ``Host`` is ``localhost:<port>``
or ``127.0.0.1:<port>`` (a page on another site cannot reach it through DNS
rebinding). A callback whose ``state`` is not this login's is turned away and the
login keeps waiting; the first one with the right state is the only one used: the
listening socket closes as soon as it arrives. The browser gets a short page
saying what happened. Standard library only.

Anything on this machine can connect, so connections are bounded: at most
:data:`MAX_CONNECTIONS` at once (a new one pushes out the oldest that has not sent
its request yet, so a flood of idle sockets can neither exhaust the process's file
handles nor lock the real browser out), and one that sends nothing is closed after
:data:`READ_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

__all__ = ["CallbackServer", "Outcome"]

log = logging.getLogger(__name__)

MAX_HEAD = 8192
# A browser sends its request as soon as it connects; a few seconds cover a slow one.
READ_TIMEOUT = 5.0
# A browser opens a few connections at most (the callback, a favicon, a preconnect).
MAX_CONNECTIONS = 16

# (succeeded, what to tell the user)
Outcome = tuple[bool, str]
OnCode = Callable[[str], Awaitable[Outcome]]
OnDenied = Callable[[str], Awaitable[Outcome]]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    421: "Misdirected Request",
}


def page(title: str, message: str) -> bytes:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>llm-sidecar: {html.escape(title)}</title></head>"
        "<body style='font-family:sans-serif;max-width:36em;margin:4em auto'>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>"
    ).encode()


class CallbackServer:
    def __init__(self, state: str, on_code: OnCode, on_denied: OnDenied) -> None:
        self._state = state
        self._on_code = on_code
        self._on_denied = on_denied
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        # Connections still waiting for their request, oldest first: the ones to drop
        # when a flood of idle sockets reaches MAX_CONNECTIONS.
        self._waiting: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._finishing: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def redirect_uri(self) -> str:
        return f"http://localhost:{self.port}/callback"

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def start(self, port: int) -> None:
        """Listen on 127.0.0.1:``port`` (0: a free port); OSError when it is taken."""
        self._server = await asyncio.start_server(self._on_connection, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()

    async def close(self) -> None:
        """Stop listening and drop idle connections; a callback being answered finishes."""
        self.stop_listening()
        for task in list(self._handlers):
            if task is not self._finishing and task is not asyncio.current_task():
                task.cancel()
        others = [t for t in self._handlers if t is not asyncio.current_task()]
        await asyncio.gather(*others, return_exceptions=True)

    # -- one connection, one request --

    def _make_room(self) -> None:
        """Keep fewer than MAX_CONNECTIONS open before taking one more.

        The oldest connection that has not sent its request is dropped: aborted at
        once, so its file handle is freed on this loop turn, whatever its handler
        is doing. A connection being answered is never dropped.
        """
        while len(self._handlers) >= MAX_CONNECTIONS and self._waiting:
            oldest, writer = next(iter(self._waiting.items()))
            del self._waiting[oldest]
            self._handlers.discard(oldest)
            writer.transport.abort()
            oldest.cancel()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._make_room()
        self._handlers.add(task)
        self._waiting[task] = writer
        try:
            status, title, message = await self._answer(reader, task)
            body = page(title, message)
            head = (
                f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                "content-type: text/html; charset=utf-8\r\n"
                f"content-length: {len(body)}\r\n"
                "cache-control: no-store\r\n"
                "referrer-policy: no-referrer\r\n"
                "connection: close\r\n\r\n"
            )
            writer.write(head.encode("ascii") + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # close() ends idle connections; ending normally avoids a logged traceback
        finally:
            self._handlers.discard(task)
            self._waiting.pop(task, None)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _answer(
        self, reader: asyncio.StreamReader, task: asyncio.Task[None]
    ) -> tuple[int, str, str]:
        try:
            raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
        except asyncio.LimitOverrunError:
            return 400, "Bad request", "The request was too large."
        finally:
            self._waiting.pop(task, None)  # a request came (or never will): not evictable
        if len(raw) > MAX_HEAD:
            return 400, "Bad request", "The request was too large."
        lines = raw.decode("latin-1").split("\r\n")
        try:
            method, target, _version = lines[0].split(" ")
        except ValueError:
            return 400, "Bad request", "That is not an HTTP request."
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        host = headers.get("host", "").lower()
        if host not in (f"localhost:{self.port}", f"127.0.0.1:{self.port}"):
            log.warning("login callback: refused a request for another host")
            return 421, "Wrong address", "This server only answers http://localhost:PORT/callback."
        url = urlsplit(target)
        if url.path != "/callback":
            return 404, "Not found", "Nothing here: the login callback is /callback."
        if method != "GET":
            return 405, "Method not allowed", "The login callback only answers GET."
        fields = parse_qs(url.query)
        state = fields.get("state", [""])[0]
        if state != self._state:
            # A stale tab, or a request forged by another page: not ours, keep waiting.
            log.warning("login callback: refused a callback with the wrong state")
            return (
                400,
                "Sign-in not accepted",
                "This sign-in does not belong to the login in progress "
                "(its state does not match). Start the login again from your editor.",
            )
        code = fields.get("code", [""])[0]
        if not code and "error" not in fields:
            return 400, "Sign-in not accepted", "The callback carried no code."
        if self._finishing is not None:
            return 409, "Already used", "This login has already received its callback."
        self._finishing = task
        self.stop_listening()  # single use: nothing else gets through after this one
        if "error" in fields:
            ok, message = await self._on_denied(fields["error"][0])
        else:
            ok, message = await self._on_code(code)
        if ok:
            return 200, "Signed in", message
        return 400, "Sign-in failed", message
