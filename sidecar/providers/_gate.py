"""A limit on concurrent requests in front of httpx's connection pool.

httpcore's pool re-examines every queued request against every connection each
time a request starts or ends: with hundreds of streams queued behind its
connection limit, a burst of cancels costs seconds of CPU per hundred
(quadratic), with the event loop stalled meanwhile. Here requests wait for a slot
*before* they reach httpx, so its pool never has a queue; a request cancelled
while it waits for a slot leaves with no network traffic at all.

A slot freed by a cancelled request is handed on only once the sidecar has read
every message the client already sent (the face passes ``when_caught_up``: the
JSON-RPC face's is :func:`sidecar.rpc.stdio.when_input_caught_up`): in a storm of
cancels the next waiter's own cancel is most likely among them, and it must not
open a connection just to close it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx

__all__ = ["ConnectionGate", "EnvironmentTransport", "WhenCaughtUp"]

# Runs a callback once the face has read every message its client already sent.
WhenCaughtUp = Callable[[Callable[[], None]], None]


class _ReleasingStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._inner:
            yield part

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._done()

    def _done(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


class EnvironmentTransport(httpx.AsyncBaseTransport):
    """A plain client's routing as a transport: ``HTTP(S)_PROXY``, ``ALL_PROXY`` and
    ``NO_PROXY`` are honoured as any httpx client honours them.

    httpx reads the proxy variables only for a client that builds its own transports,
    so a client built around :class:`ConnectionGate` would silently ignore them and
    users behind a corporate proxy could not reach their provider. The gate wraps
    this instead, which hands each request to an inner client that does the routing.
    """

    def __init__(self, limits: httpx.Limits) -> None:
        # No cookies are added (requests are built by the outer client), no redirects
        # followed (httpx's default): this client only routes and pools connections.
        self._client = httpx.AsyncClient(limits=limits, trust_env=True)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._client.send(request, stream=True)

    async def aclose(self) -> None:
        await self._client.aclose()


class ConnectionGate(httpx.AsyncBaseTransport):
    """``inner`` with at most ``limit`` requests in flight; others wait their turn."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        limit: int,
        when_caught_up: WhenCaughtUp = lambda callback: callback(),
    ) -> None:
        self._inner = inner
        self._slots = asyncio.Semaphore(limit)
        self._when_caught_up = when_caught_up

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {}).get("pool")
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError:
            # The same failure httpx raises for its own pool: a retryable network error.
            raise httpx.PoolTimeout("no free connection", request=request) from None
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException:
            self._release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _ReleasingStream(response.stream, self._release)
        return response

    def _release(self) -> None:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            self._when_caught_up(self._slots.release)
        else:
            self._slots.release()

    async def aclose(self) -> None:
        await self._inner.aclose()
