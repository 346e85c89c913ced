"""One model request end to end: credential → provider → events → outcome → failover.

The engine takes a credential from the request's :class:`~sidecar.rotation.failover.Failover`
(which asks the key pool and renews OAuth logins), lets the provider stream
the answer, hands each delta to the caller's :class:`~sidecar.events.StreamSink`,
and reports the outcome back. When the provider says rate limited, overloaded or
invalid key, the pool rotates and the engine replays the request on the next
credential: invisibly before the first delta went out, announced by a
:class:`~sidecar.events.Restart` event after. Everything else (a bad request, an
unknown model) goes back to the caller as it is. When no credential of the
provider can answer, or its daily budget is spent, :meth:`Engine.stream` goes on
with the fallbacks the user listed (:mod:`sidecar.rotation.fallback`), announced
by a :class:`~sidecar.events.Fallback` event, never silently.

The engine knows no wire format: each face renders the typed events its own way
(the JSON-RPC face merges and frames them in :mod:`sidecar.rpc.wire`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import attrs
import httpx

from sidecar import pricing
from sidecar.credentials import Credential
from sidecar.errors import (
    InvalidParams,
    SidecarError,
    UpstreamError,
)
from sidecar.events import (
    DISCARD,
    Fallback,
    Finished,
    Restart,
    StreamEvent,
    StreamOutcome,
    StreamSink,
)
from sidecar.providers import (
    MessageEnd,
    Provider,
    ProviderConfigError,
    StreamRequest,
    UpstreamFailure,
    attempt_timed_out,
    get_provider,
)
from sidecar.providers._bounded import ACCEPT_ENCODING, bounded_responses
from sidecar.providers._gate import ConnectionGate, EnvironmentTransport, WhenCaughtUp
from sidecar.rotation.failover import Failover, Refresher
from sidecar.rotation.fallback import Target, reason_to_fall_back, with_fallbacks_tried
from sidecar.rotation.keypool import KeyPool
from sidecar.rotation.routing import Routing

if TYPE_CHECKING:
    from sidecar.settings import Settings

__all__ = ["Engine", "Refresher", "StreamOutcome"]

# When every key is cooling down but one is free again within this many seconds,
# wait for it rather than show the user a rate limit.
MAX_COOLDOWN_WAIT = 10.0

MAX_CONNECTIONS = 200  # concurrent requests to providers; more wait for a free one


class Engine:
    def __init__(
        self,
        keypool: KeyPool,
        settings: Settings,
        *,
        refresher: Refresher | None = None,
        ensure_fresh: Refresher | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_cooldown_wait: float = MAX_COOLDOWN_WAIT,
        when_caught_up: WhenCaughtUp | None = None,
    ) -> None:
        """``settings``: the face's (timeouts, body limits, the environment providers'
        base URLs are read from). ``refresher`` renews an OAuth login after a 401 on it;
        ``ensure_fresh`` renews one about to expire before it is used. Both default to
        :class:`sidecar.oauth.TokenRefresher`, which never lets two processes
        spend one refresh token. ``when_caught_up`` is the face's way to run a
        callback once its client's queued messages are read (see
        :class:`~sidecar.providers._gate.ConnectionGate`); at once by default."""
        self.keypool = keypool
        self.max_cooldown_wait = max_cooldown_wait
        if refresher is None or ensure_fresh is None:
            from sidecar.oauth import TokenRefresher

            oauth = TokenRefresher(keypool, settings.env)
            refresher = refresher or oauth.refresh
            ensure_fresh = ensure_fresh or oauth.ensure_fresh
        self.refresher: Refresher = refresher
        self.ensure_fresh: Refresher = ensure_fresh
        self._transport = transport
        self.settings = settings
        self.timeouts = settings.timeouts
        self.limits = settings.limits
        self._when_caught_up = when_caught_up
        self._client: httpx.AsyncClient | None = None
        self._routing: Routing | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        # One client for every stream: connections to a provider are reused. Requests
        # queue in the gate, never in httpx's pool (see sidecar.providers._gate).
        if self._client is None:
            inner = self._transport or EnvironmentTransport(
                httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=50)
            )
            gate_args = () if self._when_caught_up is None else (self._when_caught_up,)
            self._client = httpx.AsyncClient(
                transport=ConnectionGate(inner, MAX_CONNECTIONS, *gate_args),
                timeout=self.timeouts.httpx(),
                # Bounded memory whatever a provider sends: an endless line, a gzip bomb.
                headers={"accept-encoding": ACCEPT_ENCODING},
                event_hooks={"response": [bounded_responses(self.limits)]},
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def _stream_on(
        self,
        provider_name: str,
        request: StreamRequest,
        sink: StreamSink = DISCARD,
        *,
        on_status: Callable[[str], object] = lambda provider: None,
        profile: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> StreamOutcome:
        """Stream one request on one provider, failing over between its credentials.

        ``sink`` gets the events in order (deltas, restarts, then Finished);
        ``on_status`` is called with the provider's name whenever the pool changed.
        """
        try:
            provider = get_provider(provider_name, self.settings.env if env is None else env)
        except ProviderConfigError as exc:  # e.g. Azure without an endpoint
            raise InvalidParams("provider", str(exc)) from None
        failover = Failover(
            self.keypool,
            provider_name,
            profile=profile,
            refresher=self.refresher,
            ensure_fresh=self.ensure_fresh,
            max_cooldown_wait=self.max_cooldown_wait,
            on_status=on_status,
            model=request.model,
        )
        shown = False  # the client saw part of an answer (since the last restart)

        async def attempt(cred: Credential) -> MessageEnd:
            nonlocal shown
            if shown:
                # The client saw part of an answer that will not be finished.
                sink.event(Restart(failover.attempts, failover.last_reason))
                shown = False
            try:
                return await self._attempt(provider, request, cred, sink)
            except _Failed as failed:
                shown = failed.shown
                raise failed.failure from None

        cred, end = await failover.run(attempt)  # raises when it gives up
        await failover.succeeded(cred, end.windows)
        message = end.message
        outcome = StreamOutcome(
            model=request.model,
            message=message,
            credential=cred,
            attempts=failover.attempts,
            cost=pricing.cost(request.model, message.usage, self.keypool.store.home),
        )
        sink.event(Finished(outcome))
        return outcome

    async def _attempt(
        self, provider: Provider, request: StreamRequest, cred: Credential, sink: StreamSink
    ) -> MessageEnd:
        end: MessageEnd | None = None
        shown = False
        try:
            # A provider that trickles forever is cut at the total timeout.
            async with asyncio.timeout(self.timeouts.total):
                # aclosing: whatever ends the loop (an error, a cancel) closes the upstream.
                stream = provider.stream(self.client, request, cred)
                async with contextlib.aclosing(stream) as deltas:
                    async for delta in deltas:
                        if isinstance(delta, MessageEnd):
                            end = delta
                        else:
                            sink.event(delta)
                            shown = True
                            # A client that does not read pauses its streams here (no
                            # more is read from the provider); the total timeout runs on.
                            await sink.ready()
        except TimeoutError:
            raise _Failed(attempt_timed_out(self.timeouts.total, mid_stream=shown), shown) from None
        except UpstreamFailure as exc:
            raise _Failed(exc, shown) from None
        if end is None:  # the provider contract says this cannot happen
            raise UpstreamError("the provider's stream ended without a message")
        return end

    # -- fallback to another provider, and the daily budget (sidecar/rotation/fallback.py) --

    async def stream(
        self,
        provider_name: str,
        request: StreamRequest,
        sink: StreamSink = DISCARD,
        *,
        on_status: Callable[[str], object] = lambda provider: None,
        profile: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> StreamOutcome:
        """Stream one request, failing over between credentials; the final outcome.

        ``sink`` gets the events in order (deltas, restarts, fallbacks, then Finished);
        ``on_status`` is called with the provider's name whenever the pool changed.
        When the provider cannot answer (every credential cooling down, out of credit or
        rejected, or its daily budget spent) the request goes on with the fallbacks the
        user listed for it, each announced by a :class:`~sidecar.events.Fallback` event;
        none listed, or all failing, the provider's own error (naming those tried).
        A pinned ``profile`` never falls back: the user asked for that credential.
        """
        watch = _Watch(sink)
        target = Target(provider_name, request.model)
        first: SidecarError | None = None
        tried: list[tuple[Target, SidecarError]] = []
        targets: list[Target] | None = None
        fallback: Fallback | None = None
        while True:
            try:
                self.routing.check_budget(target.provider)
                asked = (
                    request
                    if target.model == request.model
                    else attrs.evolve(request, model=target.model)
                )
                outcome = await self._stream_on(
                    target.provider, asked, watch, on_status=on_status, profile=profile, env=env
                )
            except SidecarError as exc:
                if first is None:
                    first = exc
                    if profile is not None or reason_to_fall_back(exc) is None:
                        raise
                    targets = self.routing.targets(provider_name, request.model)
                else:
                    tried.append((target, exc))
                if not targets:
                    raise with_fallbacks_tried(first, tried) from None
                target = targets.pop(0)
                fallback = Fallback(
                    target.provider, target.model, exc.message, provider_name, request.model
                )
                watch.event(fallback)
                continue
            if outcome.cost.known and outcome.provider in self.routing.budgets():
                # Only a budgeted provider's spend is written: no thread hop otherwise.
                await asyncio.to_thread(
                    self.routing.record_spend, outcome.provider, outcome.cost.total
                )
            outcome = attrs.evolve(outcome, fallback=fallback)
            sink.event(Finished(outcome))
            return outcome

    @property
    def routing(self) -> Routing:
        if self._routing is None:
            self._routing = Routing(self.keypool.store, self.keypool.clock)
        return self._routing


class _Watch:
    """The caller's sink, but the inner stream's :class:`Finished` held back: the outcome
    the caller gets says whether a fallback answered."""

    def __init__(self, sink: StreamSink) -> None:
        self.sink = sink
        # The caller's own: no extra coroutine per delta on the hot path.
        self.ready = sink.ready

    def event(self, event: StreamEvent) -> None:
        if not isinstance(event, Finished):
            self.sink.event(event)


class _Failed(Exception):
    """An attempt's failure, and whether the client saw part of its answer."""

    def __init__(self, failure: UpstreamFailure, shown: bool) -> None:
        super().__init__(failure)
        self.failure = failure
        self.shown = shown
