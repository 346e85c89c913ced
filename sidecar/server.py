"""The stdio JSON-RPC server: one short handler per ``sidecar/*`` method.

Handlers parse their params (:mod:`sidecar.protocol`), call the key pool,
the engine or the login manager, and return the wire form of the result.
Logic lives in those plain modules, not here; :mod:`sidecar.rpcio` adds the
JSON-RPC checks pygls leaves out, and ``report_server_error`` answers bodies
that are not JSON (-32700), so a client never waits for a reply that will
not come.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer

from sidecar import __version__
from sidecar.catalog import PROVIDERS
from sidecar.errors import InvalidParams, SidecarError
from sidecar.framing import FramedStdin
from sidecar.lifecycle import watch_process
from sidecar.rpcio import SidecarProtocol, raw_params_converter

# The key pool, the store, the status feed and the wire types load after the
# initialize reply (on `initialized` or the first request): editors spawn us
# often, and the answer to initialize needs none of them.
if TYPE_CHECKING:
    from sidecar.engine import Engine
    from sidecar.oauth import Login, LoginEvent, LoginManager
    from sidecar.rotation.keypool import KeyPool
    from sidecar.rotation.status import ProviderStatus, StatusKind
    from sidecar.statusfeed import StatusFeed

__all__ = ["SidecarServer", "create_server"]

log = logging.getLogger(__name__)

Handler = Callable[["SidecarServer", Any], Awaitable[Any]]

SHOW_DOCUMENT_TIMEOUT = 60.0  # seconds to wait for the client to open a login page


class SidecarServer(LanguageServer):
    def __init__(self, keypool: KeyPool | None = None) -> None:
        super().__init__(
            "llm-sidecar",
            __version__,
            protocol_cls=SidecarProtocol,
            converter_factory=raw_params_converter,
        )
        self._keypool = keypool
        self._feed: StatusFeed | None = None
        self._engine: Engine | None = None
        self._logins: LoginManager | None = None
        self._feed_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # fire-and-forget work, kept referenced

    @property
    def sidecar_protocol(self) -> SidecarProtocol:
        assert isinstance(self.protocol, SidecarProtocol)
        return self.protocol

    def editor_gone(self) -> None:
        """The editor that started us died: end now, as ``exit`` without ``shutdown``.

        ``os._exit``: pygls's reader thread may be blocked reading a stdin that
        another process still holds open, and a normal exit would wait for it.
        """
        try:
            if self._keypool is not None:
                self._keypool.save_usage()
        except Exception:  # the store may be unwritable: exiting matters more
            log.exception("could not save usage before exiting")
        logging.shutdown()
        os._exit(self.sidecar_protocol.lifecycle.exit_code)

    def send_status(self, status: ProviderStatus) -> None:
        from sidecar import protocol

        self.protocol.notify(
            "sidecar/didChangeStatus", protocol.to_wire(protocol.status_notification(status))
        )

    @property
    def keypool(self) -> KeyPool:
        if self._keypool is None:
            from sidecar.rotation.keypool import KeyPool
            from sidecar.store import Store

            self._keypool = KeyPool(Store.default())
        return self._keypool

    @property
    def feed(self) -> StatusFeed:
        if self._feed is None:
            from sidecar.statusfeed import StatusFeed

            self._feed = StatusFeed(self.keypool, self.send_status)
        return self._feed

    @property
    def engine(self) -> Engine:
        # Imported on the first stream: httpx and the providers stay off start-up.
        if self._engine is None:
            from sidecar.engine import Engine

            self._engine = Engine(self.keypool)
        return self._engine

    @property
    def logins(self) -> LoginManager:
        # Imported on the first login, like the engine.
        if self._logins is None:
            from sidecar.oauth import LoginManager

            self._logins = LoginManager(self.keypool, on_event=self.on_login_event)
        return self._logins

    def spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def send_login_status(self, provider: str, kind: StatusKind | None, message: str) -> None:
        """The provider's status with a login's progress or outcome as its message.

        ``kind`` overrides the status's own for this one notification (a login in
        progress is a Warning, its success Normal, its failure an Error: clients
        end a pending login on Normal or Error); the real status follows at once
        when it differs, so the status bar does not keep the override.
        """
        from sidecar.rotation.status import StatusKind

        real = self.keypool.status(provider)
        self.send_status(attrs.evolve(real, kind=kind or real.kind, message=message))
        if kind is not None and kind is not real.kind and kind is not StatusKind.WARNING:
            self.feed.publish(provider, force=True)

    def on_login_event(self, event: LoginEvent) -> None:
        """A login ended: by the browser's callback, a paste, a cancel or the timeout."""
        from sidecar.rotation.status import StatusKind

        kinds = {"succeeded": StatusKind.NORMAL, "failed": StatusKind.ERROR, "cancelled": None}
        self.send_login_status(event.provider, kinds[event.kind], event.message)
        if event.kind == "failed" and not event.answered:
            # Nobody asked for this outcome (a callback, a timeout): tell the user.
            self.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Error, message=f"llm-sidecar: {event.message}"
                )
            )

    async def announce_login(self, login: Login) -> None:
        """After the answer to ``sidecar/login``: progress, then open the URL in the client."""
        from sidecar.rotation.status import StatusKind

        for _ in range(2):
            await asyncio.sleep(0)  # lets the answer go out first
        if login.result.done():
            return
        self.send_login_status(login.provider, StatusKind.WARNING, login.waiting_message)
        caps = self.client_capabilities
        show = caps.window.show_document if caps and caps.window else None
        if not (show and show.support):
            return
        params = types.ShowDocumentParams(uri=login.url, external=True)
        # Not send_request_async: its future is cancelled with the awaiting task, and the
        # client's late answer then raises InvalidStateError inside pygls (pygls #621).
        # The shield keeps pygls's own future alive whatever happens to this task.
        # Any answer ends the wait at once: a result, null (clients that do not
        # implement it) or an error; the URL is in the answer to sidecar/login anyway.
        future = self.protocol.send_request(types.WINDOW_SHOW_DOCUMENT, params)
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

    def send_deltas(self, deltas: list[dict[str, Any]]) -> None:
        """Send a batch of ``sidecar/streamDelta`` notifications in one write.

        The hot path of every stream: each delta is serialized once with
        ``json.dumps`` (ASCII-escaped, so its length in characters is its length
        in bytes) instead of going through pygls's attrs round trip.
        """
        writer = self.protocol.writer
        if writer is None:
            return
        frames = []
        for delta in deltas:
            body = json.dumps(
                {"jsonrpc": "2.0", "method": "sidecar/streamDelta", "params": delta},
                separators=(",", ":"),
            )
            frames.append(f"Content-Length: {len(body)}\r\n\r\n{body}")
        writer.write("".join(frames).encode("ascii"))

    def start_feed(self) -> None:
        if self._feed_task is None:
            self._feed_task = asyncio.get_running_loop().create_task(self.feed.run())

    def report_server_error(self, error: Exception, source: Any) -> None:
        # pygls's reader loop reports a message it could not read with
        # source=JsonRpcException; the sender is owed an error, with a null id
        # since we cannot know theirs. Errors of handlers were answered already.
        if source is JsonRpcException:
            if isinstance(error, json.JSONDecodeError | UnicodeDecodeError | RecursionError):
                code, message = -32700, "parse error: invalid JSON"
            else:
                code, message = -32600, "invalid request: not a well-formed JSON-RPC message"
            error_reply = types.ResponseError(code=code, message=message)
            self.protocol._send_response(None, error=error_reply)  # type: ignore[arg-type]
            log.warning("answered an unreadable message with %d", code)


def _rpc(ls: SidecarServer, method: str) -> Callable[[Handler], Handler]:
    """Register ``method``; SidecarErrors become JSON-RPC errors with their codes."""

    def decorate(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def handler(server: SidecarServer, params: Any) -> Any:
            try:
                return await fn(server, params)
            except SidecarError as exc:
                raise JsonRpcException(message=exc.message, code=exc.code, data=exc.data) from None

        ls.feature(method)(handler)
        return fn

    return decorate


def _provider(name: str) -> str:
    if name not in PROVIDERS:
        raise InvalidParams(
            # The value is not quoted: a key pasted into the wrong field must not come back.
            "provider",
            f"unknown provider (known: {', '.join(PROVIDERS)})",
        )
    return name


def create_server(keypool: KeyPool | None = None) -> SidecarServer:
    ls = SidecarServer(keypool)

    @ls.feature(types.SHUTDOWN)
    async def shutdown(server: SidecarServer, _: Any) -> None:
        server.keypool.save_usage()
        if server._logins is not None:
            await server._logins.aclose()
        if server._engine is not None:
            await server._engine.aclose()

    @ls.feature(types.INITIALIZE)
    def initialize(server: SidecarServer, params: types.InitializeParams) -> None:
        if params.process_id is not None:
            server.spawn(watch_process(params.process_id, server.editor_gone))

    @ls.feature(types.INITIALIZED)
    async def initialized(server: SidecarServer, _: Any) -> None:
        server.feed.publish_all(force=True)
        server.start_feed()

    @_rpc(ls, "sidecar/status")
    async def status(server: SidecarServer, raw: Any) -> Any:
        from sidecar import protocol

        params = protocol.parse_params(protocol.StatusParams, raw)
        names = [_provider(params.provider)] if params.provider else None
        from sidecar.store.health import problem_texts

        statuses = server.keypool.status_all(names)
        problems = problem_texts(server.keypool.store)
        result = protocol.StatusResult([protocol.provider_state(s) for s in statuses], problems)
        return protocol.to_wire(result)

    @_rpc(ls, "sidecar/keyAdd")
    async def key_add(server: SidecarServer, raw: Any) -> Any:
        from sidecar import protocol

        params = protocol.parse_params(protocol.KeyAddParams, raw)
        provider = _provider(params.provider)
        if params.key is not None:
            cred, added = server.keypool.add_key(provider, params.key)
        else:
            cred, added = server.keypool.add_login(provider)
        status = server.feed.publish(provider, force=True)
        info = next(c for c in status.credentials if c.id == cred.id)
        result = protocol.KeyAddResult(
            protocol.credential_info(info), added, protocol.provider_state(status)
        )
        return protocol.to_wire(result)

    @_rpc(ls, "sidecar/keyList")
    async def key_list(server: SidecarServer, raw: Any) -> Any:
        from sidecar import protocol

        params = protocol.parse_params(protocol.KeyListParams, raw)
        status = server.keypool.status(_provider(params.provider))
        creds = [protocol.credential_info(c) for c in status.credentials]
        return protocol.to_wire(protocol.KeyListResult(status.provider, creds))

    @_rpc(ls, "sidecar/keyRemove")
    async def key_remove(server: SidecarServer, raw: Any) -> Any:
        from sidecar import protocol

        params = protocol.parse_params(protocol.KeyRemoveParams, raw)
        provider = _provider(params.provider)
        if (params.fingerprint is None) == (params.index is None):
            raise InvalidParams("fingerprint", "give exactly one of fingerprint or index")
        before = {c.id: c for c in server.keypool.status(provider).credentials}
        removed = server.keypool.remove(
            provider, fingerprint=params.fingerprint, index=params.index
        )
        status = server.feed.publish(provider, force=True)
        result = protocol.KeyRemoveResult(
            protocol.credential_info(before[removed.id]), protocol.provider_state(status)
        )
        return protocol.to_wire(result)

    @_rpc(ls, "sidecar/keyReset")
    async def key_reset(server: SidecarServer, raw: Any) -> Any:
        from sidecar import protocol

        params = protocol.parse_params(protocol.KeyResetParams, raw)
        provider = _provider(params.provider)
        server.keypool.reset(provider)
        return protocol.to_wire(protocol.provider_state(server.feed.publish(provider, force=True)))

    @_rpc(ls, "sidecar/login")
    async def login(server: SidecarServer, raw: Any) -> Any:
        from sidecar import protocol

        params = protocol.parse_params(protocol.LoginParams, raw)
        provider = _provider(params.provider)
        started = await server.logins.start(provider, params.mode, params.profile)
        server.spawn(server.announce_login(started))
        return protocol.to_wire(protocol.LoginResult(started.id, started.url, started.mode))

    @_rpc(ls, "sidecar/loginComplete")
    async def login_complete(server: SidecarServer, raw: Any) -> Any:
        from sidecar import protocol

        params = protocol.parse_params(protocol.LoginCompleteParams, raw)
        cred = await server.logins.complete(params.login_id, params.input)
        status = server.keypool.status(cred.provider)
        info = next((c for c in status.credentials if c.id == cred.id), None)
        if info is None:  # the same token is stored elsewhere too: show the login itself
            from sidecar.rotation.status import credential_state

            info = credential_state(cred, None, server.keypool.clock())
        result = protocol.LoginCompleteResult(
            cred.provider, protocol.credential_info(info), protocol.provider_state(status)
        )
        return protocol.to_wire(result)

    @_rpc(ls, "sidecar/loginCancel")
    async def login_cancel(server: SidecarServer, raw: Any) -> Any:
        from sidecar import protocol

        params = protocol.parse_params(protocol.LoginCancelParams, raw)
        cancelled = await server.logins.cancel(params.login_id)
        return protocol.to_wire(protocol.LoginCancelResult(cancelled))

    @_rpc(ls, "sidecar/logout")
    async def logout(server: SidecarServer, raw: Any) -> Any:
        from sidecar import protocol

        params = protocol.parse_params(protocol.LogoutParams, raw)
        provider = _provider(params.provider)
        removed = server.logins.logout(provider, params.profile)
        status = server.feed.publish(provider, force=True)
        info = None
        if removed is not None:
            from sidecar.rotation.status import credential_state

            info = protocol.credential_info(credential_state(removed, None, server.keypool.clock()))
        return protocol.to_wire(protocol.LogoutResult(protocol.provider_state(status), info))

    @_rpc(ls, "sidecar/models")
    async def models(server: SidecarServer, raw: Any) -> Any:
        from sidecar import protocol
        from sidecar.models import list_models

        params = protocol.parse_params(protocol.StatusParams, raw)
        names = [_provider(params.provider)] if params.provider else list(PROVIDERS)
        result = await list_models(server.engine, names, on_status=server.feed.publish)
        return protocol.to_wire(result)

    @_rpc(ls, "sidecar/stream")
    async def stream(server: SidecarServer, raw: Any) -> Any:
        from sidecar import protocol

        params = protocol.parse_params(protocol.StreamParams, raw)
        provider = _provider(params.provider)
        outcome = await server.engine.stream(
            provider,
            protocol.stream_request(params),
            send=server.send_deltas,
            on_status=server.feed.publish,
            stream_id=params.stream_id,
            profile=params.profile,
        )
        return protocol.to_wire(protocol.stream_result(outcome))

    return ls


def serve(log_level: str = "WARNING", log_file: Path | None = None) -> int:
    """Run the server on stdin/stdout until the client exits; the exit code."""
    from sidecar import stdio
    from sidecar.logs import setup_logging

    ls = create_server()
    setup_logging(log_level, log_file, lambda: ls.keypool.known_secrets())
    log.info("llm-sidecar %s serving on stdio (pid %d)", __version__, os.getpid())
    # Neither pipe may block the event loop: see sidecar.stdio.
    meter = stdio.InputMeter(sys.stdin.buffer)
    outbox = stdio.Outbox(sys.stdout.buffer)
    stdio.install(meter, outbox)
    try:
        ls.start_io(stdin=FramedStdin(meter), stdout=outbox)  # type: ignore[arg-type]  # duck-typed
    finally:
        outbox.close()  # the client hung up without `exit`: still send what is left
    # pygls swallows the SystemExit of `exit` and its code: LSP wants 1 without shutdown.
    lifecycle = ls.sidecar_protocol.lifecycle
    return lifecycle.exit_code if lifecycle.exited else 0
