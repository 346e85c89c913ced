"""The stdio JSON-RPC server: its services, loaded lazily, and its way out to the editor.

The ``sidecar/*`` handlers are in :mod:`sidecar.rpc.handlers`; the LSP lifecycle
methods are here. The settings, the key pool, the status feed, the engine and the
login manager are built on first use, so the answer to ``initialize`` needs none of
them; each service is handed the part of the settings it needs.
:mod:`sidecar.rpc.rpcio` adds the JSON-RPC checks pygls leaves out, and
``report_server_error`` answers bodies that are not JSON (-32700), so a client
never waits for a reply that will not come.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.io_ import StdoutWriter, run_async
from pygls.lsp.server import LanguageServer

from sidecar import __version__
from sidecar.rpc import handlers
from sidecar.rpc.framing import FramedReader, FramedStdin
from sidecar.rpc.lifecycle import watch_process
from sidecar.rpc.rpcio import SidecarProtocol, raw_params_converter

# The key pool, the store, the status feed and the wire types load after the
# initialize reply (on `initialized` or the first request): editors spawn us
# often, and the answer to initialize needs none of them.
if TYPE_CHECKING:
    from sidecar.engine import Engine
    from sidecar.oauth import LoginManager
    from sidecar.rotation.keypool import KeyPool
    from sidecar.rotation.status import ProviderStatus
    from sidecar.rpc.logins import LoginProgress
    from sidecar.rpc.statusfeed import StatusFeed
    from sidecar.settings import Settings

__all__ = ["SidecarServer", "create_server"]

log = logging.getLogger(__name__)

# After `initialized`, the status feed's file watch starts this much later
# (SidecarServer.watch_later): a change made meanwhile is seen when it starts.
WATCH_DELAY = 0.3


class SidecarServer(LanguageServer):
    def __init__(self, settings: Settings | None = None) -> None:
        """``settings``: as a test built them; by default read on first use."""
        super().__init__(
            "llm-sidecar",
            __version__,
            protocol_cls=SidecarProtocol,
            converter_factory=raw_params_converter,
        )
        self._settings = settings
        self._keypool: KeyPool | None = None
        self._feed: StatusFeed | None = None
        self._engine: Engine | None = None
        self._logins: LoginManager | None = None
        self._login_progress: LoginProgress | None = None
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
        from sidecar.rpc import protocol

        self.protocol.notify(
            "sidecar/didChangeStatus", protocol.to_wire(protocol.status_notification(status))
        )

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from sidecar.settings import Settings

            self._settings = Settings.load()
            for problem in self._settings.problems:
                # The server's half of the policy (sidecar.settings): a log line here and
                # an Error in every status (the key pool's problems). The CLI and the
                # gateway refuse to start instead.
                log.error("%s: using the default", problem.message)
        return self._settings

    @property
    def keypool(self) -> KeyPool:
        if self._keypool is None:
            from sidecar.rotation.keypool import KeyPool
            from sidecar.store import Store

            settings = self.settings
            self._keypool = KeyPool(Store(settings.home), settings.env, problems=settings.problems)
        return self._keypool

    @property
    def feed(self) -> StatusFeed:
        if self._feed is None:
            from sidecar.rpc.statusfeed import StatusFeed

            self._feed = StatusFeed(self.keypool, self.send_status)
        return self._feed

    @property
    def engine(self) -> Engine:
        # Imported after the initialize reply (warm_up) or on the first stream:
        # httpx and the providers stay off start-up.
        if self._engine is None:
            self._engine = self._new_engine()
        return self._engine

    def _new_engine(self) -> Engine:
        from sidecar.engine import Engine
        from sidecar.rpc import stdio

        engine = Engine(self.keypool, self.settings, when_caught_up=stdio.when_input_caught_up)
        engine.client  # noqa: B018  # built now: its TLS contexts cost tens of ms
        return engine

    async def watch_later(self) -> None:
        """Start the status feed's file watch :data:`WATCH_DELAY` after ``initialized``,
        once the editor's first requests (a status, a key list) have been answered:
        inotify loads ctypes, tens of ms they would wait for. The current status went
        out at ``initialized``, and the watch looks once when it starts."""
        await asyncio.sleep(WATCH_DELAY)
        self.start_feed()

    async def warm_up(self) -> None:
        """Load and build the streaming path in a worker thread.

        The first question after a spawn would otherwise wait for it (imports of
        httpx, the providers, OAuth and pricing; the HTTP client's TLS contexts; the
        wire types' converters): hundreds of ms. The event loop keeps answering
        meanwhile. A stream that starts before it ended builds its own engine, and
        the warmed one is dropped.
        """
        try:
            engine = await asyncio.to_thread(self._warm)
        except Exception:  # a failure here shows again, to the user, on the first stream
            log.exception("warming up the streaming path failed")
            return
        if self._engine is None:
            self._engine = engine
        else:
            await engine.aclose()

    def _warm(self) -> Engine:
        import anyio
        import anyio._backends._asyncio  # else loaded by the first connect: ~3-20 ms
        import anyio.streams.tls
        import attrs  # httpcore's first connection loads these
        import httpx_sse  # noqa: F401

        from sidecar import pricing
        from sidecar.providers import Usage, _anthropic, _openai  # noqa: F401
        from sidecar.rpc import protocol, streams, wire  # noqa: F401

        anyio.connect_tcp, anyio.create_memory_object_stream, anyio.lowlevel  # noqa: B018  # lazy
        sample = {"provider": "anthropic", "model": "m", "maxTokens": 1, "messages": []}
        protocol.parse_params(protocol.StreamParams, sample)  # cattrs builds its hooks once
        cost = pricing.cost("claude-sonnet-4-5", Usage(), self.keypool.store.home)
        ref = protocol.CredentialRef("id", "fingerprint")
        usage = wire.usage_to_wire(Usage())
        result = protocol.StreamResult("s", "m", "end_turn", usage, {}, ref, 1, "anthropic")
        protocol.to_wire(attrs.evolve(result, content=[]))
        protocol.converter.unstructure(cost)
        return self._new_engine()

    @property
    def logins(self) -> LoginManager:
        # Imported on the first login, like the engine.
        if self._logins is None:
            from sidecar.oauth import LoginManager

            self._logins = LoginManager(
                self.keypool, self.settings.env, on_event=self.login_progress.ended
            )
        return self._logins

    @property
    def login_progress(self) -> LoginProgress:
        if self._login_progress is None:
            from sidecar.rpc.logins import LoginProgress

            self._login_progress = LoginProgress(self)
        return self._login_progress

    def spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start_feed(self) -> None:
        if self._feed_task is None:
            self._feed_task = asyncio.get_running_loop().create_task(self.feed.run())

    def start_team(self) -> None:
        """Link the pool to the team's state (``LLM_SIDECAR_STATE``), if it names one: at
        once, so that the first outcomes are the team's too. Its link going on- or
        offline changes every provider's status."""
        from sidecar.rotation.sharing import start_sharing

        start_sharing(
            self.keypool, self.settings.team, lambda link: self.feed.publish_all(force=True)
        )

    def start_io(
        self, stdin: BinaryIO | FramedStdin | None = None, stdout: BinaryIO | None = None
    ) -> None:
        """pygls's ``start_io`` with :class:`~sidecar.rpc.framing.FramedReader` as its
        reader (one thread hop per message, not three); ``stdin`` is a FramedStdin."""
        if not isinstance(stdin, FramedStdin):
            stdin = FramedStdin(stdin or sys.stdin.buffer)
        self._stop_event = threading.Event()
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        reader = FramedReader(stdin, self.thread_pool)
        try:
            asyncio.run(
                run_async(
                    stop_event=self._stop_event,
                    reader=reader,
                    protocol=self.protocol,
                    logger=logging.getLogger("pygls.server"),
                    error_handler=self.report_server_error,
                )
            )
        except BrokenPipeError:
            log.error("the connection to the editor is lost: shutting down")
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.shutdown()  # type: ignore[no-untyped-call]  # pygls: untyped

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


def create_server(settings: Settings | None = None) -> SidecarServer:
    ls = SidecarServer(settings)

    @ls.feature(types.SHUTDOWN)
    async def shutdown(server: SidecarServer, _: Any) -> None:
        server.keypool.save_usage()
        if server.keypool.team is not None:
            await server.keypool.team.aclose()
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
        server.start_team()
        server.spawn(server.watch_later())
        server.spawn(server.warm_up())  # in a thread: the loop keeps answering

    handlers.register(ls)
    return ls


def serve(log_level: str = "WARNING", log_file: Path | None = None) -> int:
    """Run the server on stdin/stdout until the client exits; the exit code."""
    from sidecar.logs import setup_logging
    from sidecar.rpc import stdio

    ls = create_server()
    setup_logging(log_level, log_file, lambda: ls.keypool.known_secrets())
    log.info("llm-sidecar %s serving on stdio (pid %d)", __version__, os.getpid())
    # Neither pipe may block the event loop: see sidecar.rpc.stdio.
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
