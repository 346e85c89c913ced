"""One model request end to end: credential → provider → deltas → outcome → failover.

The engine takes a credential from the request's :class:`~sidecar.rotation.failover.Failover`
(which asks the key pool and renews OAuth logins), lets the provider stream
the answer, forwards each delta, and reports the outcome back. When
the provider says rate limited, overloaded or invalid key, the pool rotates
and the engine replays the request on the next credential: invisibly before
the first delta went out, announced by a ``restart`` delta after. Everything
else (a bad request, an unknown model) goes back to the caller as it is.

Deltas that arrive together travel together: they are buffered until the
event loop's next turn and adjacent ones of one kind are merged, so a burst
of tokens read in one network chunk becomes one notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import httpx

from sidecar import pricing, stdio
from sidecar.credentials import Credential
from sidecar.errors import (
    InvalidParams,
    UpstreamError,
)
from sidecar.limits import BodyLimits
from sidecar.providers import (
    Delta,
    Message,
    MessageEnd,
    Provider,
    ProviderConfigError,
    SignatureDelta,
    StreamRequest,
    TextDelta,
    ThinkingDelta,
    ToolInputDelta,
    ToolUseStart,
    ToolUseStop,
    UpstreamFailure,
    UsageDelta,
    attempt_timed_out,
    get_provider,
)
from sidecar.providers._bounded import ACCEPT_ENCODING, bounded_responses
from sidecar.providers._gate import ConnectionGate, EnvironmentTransport
from sidecar.rotation.failover import Failover, Refresher
from sidecar.rotation.keypool import KeyPool
from sidecar.timeouts import Timeouts

__all__ = ["DeltaSink", "Engine", "Refresher", "StreamOutcome", "delta_to_wire"]

WireDelta = dict[str, Any]

# When every key is cooling down but one is free again within this many seconds,
# wait for it rather than show the user a rate limit.
MAX_COOLDOWN_WAIT = 10.0

MAX_CONNECTIONS = 200  # concurrent requests to providers; more wait for a free one


def delta_to_wire(delta: Delta) -> WireDelta:
    """The ``sidecar/streamDelta`` fields of one delta (without ``streamId``)."""
    match delta:
        case TextDelta(text=text):
            return {"kind": "text", "text": text}
        case ThinkingDelta(text=text):
            return {"kind": "thinking", "text": text}
        case SignatureDelta(signature=signature):
            return {"kind": "signature", "signature": signature}
        case ToolUseStart(id=id, name=name):
            return {"kind": "toolUseStart", "id": id, "name": name}
        case ToolInputDelta(id=id, json=fragment):
            return {"kind": "toolInputDelta", "id": id, "json": fragment}
        case ToolUseStop(id=id):
            return {"kind": "toolUseStop", "id": id}
        case UsageDelta(usage=usage):
            return {"kind": "usage", "usage": usage_to_wire(usage)}
    raise TypeError(f"not a delta: {type(delta).__name__}")


def usage_to_wire(usage: Any) -> dict[str, int]:
    return {
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "cacheReadTokens": usage.cache_read_tokens,
        "cacheWriteTokens": usage.cache_write_tokens,
    }


# Field that concatenates when two adjacent deltas of a kind are merged.
_MERGEABLE = {
    "text": "text",
    "thinking": "text",
    "signature": "signature",
    "toolInputDelta": "json",
}


class DeltaSink:
    """Buffers one stream's deltas until the loop's next turn, merging neighbours."""

    def __init__(self, stream_id: str, send: Callable[[list[WireDelta]], None]) -> None:
        self.stream_id = stream_id
        self._send = send
        self._pending: list[WireDelta] = []
        self._scheduled: asyncio.Handle | None = None
        self.sent_any = False

    def add(self, wire: WireDelta) -> None:
        last = self._pending[-1] if self._pending else None
        field = _MERGEABLE.get(wire["kind"])
        if (
            last is not None
            and field is not None
            and last["kind"] == wire["kind"]
            and last.get("id") == wire.get("id")
        ):
            last[field] += wire[field]
        else:
            self._pending.append({"streamId": self.stream_id, **wire})
        self.sent_any = True
        if self._scheduled is None:
            self._scheduled = asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        if self._pending:
            pending, self._pending = self._pending, []
            self._send(pending)


@attrs.frozen
class StreamOutcome:
    stream_id: str
    model: str
    message: Message
    credential: Credential
    attempts: int
    cost: pricing.Cost


class Engine:
    def __init__(
        self,
        keypool: KeyPool,
        *,
        refresher: Refresher | None = None,
        ensure_fresh: Refresher | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: Timeouts | None = None,
        max_cooldown_wait: float = MAX_COOLDOWN_WAIT,
        limits: BodyLimits | None = None,
    ) -> None:
        """``refresher`` renews an OAuth login after a 401 on it; ``ensure_fresh``
        renews one about to expire before it is used. Both default to
        :class:`sidecar.oauth.TokenRefresher`, which never lets two processes
        spend one refresh token."""
        self.keypool = keypool
        self.max_cooldown_wait = max_cooldown_wait
        if refresher is None or ensure_fresh is None:
            from sidecar.oauth import TokenRefresher

            oauth = TokenRefresher(keypool)
            refresher = refresher or oauth.refresh
            ensure_fresh = ensure_fresh or oauth.ensure_fresh
        self.refresher: Refresher = refresher
        self.ensure_fresh: Refresher = ensure_fresh
        self._transport = transport
        # Read once with every other setting (sidecar.settings); passed in by tests.
        self.timeouts = timeout or keypool.settings.timeouts
        self.limits = limits or keypool.settings.limits
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        # One client for every stream: connections to a provider are reused. Requests
        # queue in the gate, never in httpx's pool (see sidecar.providers._gate).
        if self._client is None:
            inner = self._transport or EnvironmentTransport(
                httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=50)
            )
            self._client = httpx.AsyncClient(
                transport=ConnectionGate(inner, MAX_CONNECTIONS),
                timeout=self.timeouts.httpx(),
                # Bounded memory whatever a provider sends: an endless line, a gzip bomb.
                headers={"accept-encoding": ACCEPT_ENCODING},
                event_hooks={"response": [bounded_responses(self.limits)]},
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def stream(
        self,
        provider_name: str,
        request: StreamRequest,
        *,
        send: Callable[[list[WireDelta]], None],
        on_status: Callable[[str], object] = lambda provider: None,
        stream_id: str | None = None,
        profile: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> StreamOutcome:
        """Stream one request, failing over between credentials; the final outcome.

        ``send`` gets batches of wire deltas (each with ``streamId``);
        ``on_status`` is called with the provider's name whenever the pool changed.
        """
        try:
            provider = get_provider(provider_name, self.keypool.env if env is None else env)
        except ProviderConfigError as exc:  # e.g. Azure without an endpoint
            raise InvalidParams("provider", str(exc)) from None
        sink = DeltaSink(stream_id or f"s-{uuid.uuid4().hex[:12]}", send)
        failover = Failover(
            self.keypool,
            provider_name,
            profile=profile,
            refresher=self.refresher,
            ensure_fresh=self.ensure_fresh,
            max_cooldown_wait=self.max_cooldown_wait,
            on_status=on_status,
        )
        try:
            while True:
                cred = await failover.next_credential()
                if sink.sent_any:
                    # The client saw part of an answer that will not be finished.
                    reason = failover.last_reason
                    sink.add({"kind": "restart", "attempt": failover.attempts, "reason": reason})
                    sink.sent_any = False
                try:
                    message = await self._attempt(provider, request, cred, sink)
                except UpstreamFailure as exc:
                    await failover.after_failure(cred, exc)  # raises when it gives up
                    continue
                self.keypool.report_success(cred)
                on_status(provider_name)
                return StreamOutcome(
                    stream_id=sink.stream_id,
                    model=request.model,
                    message=message,
                    credential=cred,
                    attempts=failover.attempts,
                    cost=pricing.cost(request.model, message.usage, self.keypool.store.home),
                )
        finally:
            sink.flush()

    async def _attempt(
        self, provider: Provider, request: StreamRequest, cred: Credential, sink: DeltaSink
    ) -> Message:
        message: Message | None = None
        try:
            # A provider that trickles forever is cut at the total timeout.
            async with asyncio.timeout(self.timeouts.total):
                # aclosing: whatever ends the loop (an error, a cancel) closes the upstream.
                stream = provider.stream(self.client, request, cred)
                async with contextlib.aclosing(stream) as deltas:
                    async for delta in deltas:
                        if isinstance(delta, MessageEnd):
                            message = delta.message
                        else:
                            sink.add(delta_to_wire(delta))
                            # A client that does not read pauses its streams here (no
                            # more is read from the provider); the total timeout runs on.
                            await stdio.output_ready()
        except TimeoutError:
            raise attempt_timed_out(self.timeouts.total, mid_stream=sink.sent_any) from None
        if message is None:  # the provider contract says this cannot happen
            raise UpstreamError("the provider's stream ended without a message")
        return message
