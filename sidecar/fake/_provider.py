"""``FakeProvider``: the server on a background thread with its own event loop, so the
same object serves sync tests, async tests (whatever their loop) and benchmarks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from sidecar.fake._oauth import AUTHORIZE_PATH, MANUAL_PATH, TOKEN_PATH, OAuthState
from sidecar.fake._ratelimit import Overload, RateLimiter, RateLimits
from sidecar.fake._script import Script, parse_step
from sidecar.fake._server import FakeServer
from sidecar.fake._state import Event, RecordedRequest, State
from sidecar.fake._steps import Reply, Step

T = TypeVar("T")


class FakeProvider:
    """A local stand-in for the Anthropic and OpenAI-compatible HTTP APIs.

    ``keys`` are accepted with the default reply; :meth:`script` adds or replaces the
    answers of one key. Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        keys: Iterable[str] = (),
        *,
        scripts: Iterable[Script] = (),
        port: int = 0,
        timestamps: bool = False,
        limits: RateLimits | Mapping[str | None, RateLimits] | None = None,
        overload: Overload | None = None,
    ) -> None:
        """``limits``: one :class:`RateLimits` for every key, or limits by key (``None``:
        every other key); ``overload``: 529 bursts whatever the key."""
        by_key: Mapping[str | None, RateLimits] | None = (
            {None: limits} if isinstance(limits, RateLimits) else limits
        )
        self._state = State(
            [*(Script(k) for k in keys), *scripts],
            timestamps=timestamps,
            limits=by_key,
            overload=overload,
        )
        self._port = port
        self._server = FakeServer(self._state)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    # -- lifecycle --

    def start(self) -> FakeProvider:
        if self._thread is not None:
            raise RuntimeError("FakeProvider already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._url = loop.run_until_complete(self._server.start(port=self._port))
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="sidecar-fake", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("FakeProvider did not start within 10 s")
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._server.close(), loop)
        try:
            future.result(timeout=5)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- scripting --

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``; a base URL for both SDK flavours (OpenAI clients
        may add ``/v1``: both paths are served)."""
        if self._url is None:
            raise RuntimeError("FakeProvider is not started")
        return self._url

    def script(
        self,
        key: str,
        steps: Sequence[Step | dict[str, Any]] = (),
        default: Step | dict[str, Any] | None = None,
    ) -> None:
        """Answer requests made with ``key`` by ``steps``, one per request, then by
        ``default`` (a normal reply when None). Steps may be given in their JSON form."""
        self._state.set_script(
            Script(
                key,
                tuple(parse_step(s) for s in steps),
                Reply() if default is None else parse_step(default),
            )
        )

    def reset(self) -> None:
        """Back to the keys and scripts given to the constructor; the record is cleared
        (and the authorization server forgets every code and token it issued)."""
        self._state.reset()
        self._server.oauth.reset()

    # -- rate limits --

    @property
    def ratelimit(self) -> RateLimiter:
        """The keys' buckets: ``configure(key or None, RateLimits(...) or None)``,
        ``set_overload(Overload(every, length) or None)``, ``snapshot(key)``."""
        return self._state.ratelimit

    # -- the OAuth authorization server --

    @property
    def oauth(self) -> OAuthState:
        """The fake authorization server: ``fail``, ``issue``, ``revoke_access``,
        ``refresh_requests``, ``issued``, ``delay``, ``expires_in``, ``deny``."""
        return self._server.oauth

    def oauth_env(self) -> dict[str, str]:
        """The environment that points a sidecar's Anthropic login at this fake."""
        return {
            "LLM_SIDECAR_ANTHROPIC_AUTHORIZE_URL": self.url + AUTHORIZE_PATH,
            "LLM_SIDECAR_ANTHROPIC_TOKEN_URL": self.url + TOKEN_PATH,
            "LLM_SIDECAR_ANTHROPIC_MANUAL_REDIRECT_URL": self.url + MANUAL_PATH,
        }

    # -- observing --

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the provider requests received so far, in order."""
        return self._state.requests

    @property
    def events(self) -> list[Event]:
        """A snapshot of connection events: completed, connection_closed, dropped."""
        return self._state.events

    def log(self) -> dict[str, Any]:
        """What ``GET /_fake/log`` returns: the record with every key fingerprinted."""
        return self._state.log()

    def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Block until ``predicate()`` is truthy and return it; TimeoutError after
        ``timeout`` seconds. In async tests use :meth:`wait_for_async`."""
        return self._state.wait_for(predicate, timeout)

    async def wait_for_async(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """:meth:`wait_for` without blocking the caller's event loop."""
        return await self._state.wait_for_async(predicate, timeout)
