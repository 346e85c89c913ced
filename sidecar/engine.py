"""One model request end to end: credential → provider → deltas → outcome → failover.

The engine asks the key pool for a credential, lets the provider stream the
answer, forwards each delta, and reports the outcome back to the pool. When
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
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import httpx

from sidecar import pricing
from sidecar.credentials import Credential
from sidecar.errors import (
    AllRateLimited,
    CredentialRejected,
    InvalidParams,
    LoginError,
    NoCredentials,
    UpstreamError,
)
from sidecar.keypool import KeyPool
from sidecar.oauth import is_permanent
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
    get_provider,
)
from sidecar.rotation import Action

__all__ = ["DeltaSink", "Engine", "Refresher", "StreamOutcome", "delta_to_wire"]

# Refreshes an OAuth login and returns the renewed credential (the OAuth module);
# raises LoginError when it cannot.
Refresher = Callable[[Credential], Awaitable[Credential]]
WireDelta = dict[str, Any]

NETWORK_RETRIES = 2  # a dropped connection is retried this often before it is reported
# When every key is cooling down but one is free again within this many seconds,
# wait for it rather than show the user a rate limit.
MAX_COOLDOWN_WAIT = 10.0


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
        timeout: httpx.Timeout | None = None,
        max_cooldown_wait: float = MAX_COOLDOWN_WAIT,
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
        self._timeout = timeout or httpx.Timeout(connect=10.0, read=120.0, write=30.0, pool=10.0)
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        # One client for every stream: connections to a provider are reused.
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport,
                timeout=self._timeout,
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
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
        skip: set[str] = set()  # refused for their scope: skipped for this request
        refreshed: set[str] = set()  # OAuth logins refreshed once already
        retry_now: Credential | None = None  # a just-refreshed login, retried at once
        login_error: LoginError | None = None  # why a login could not be refreshed
        pinned = self._pinned(provider_name, profile) if profile else None
        max_attempts = 2 * len(self.keypool.pool(provider_name)) + NETWORK_RETRIES + 2
        network_failures = attempts = 0
        last_reason = ""
        deadline = time.monotonic() + self.max_cooldown_wait  # for waiting out cooldowns
        try:
            while True:
                if retry_now is not None:
                    cred, retry_now = retry_now, None
                else:
                    if pinned is not None:
                        cred = pinned
                    else:
                        try:
                            cred = await self._acquire(provider_name, skip, last_reason, deadline)
                        except (CredentialRejected, NoCredentials):
                            # What is left was refused or could not be refreshed: the
                            # login's own error says what to do.
                            if login_error is not None:
                                raise login_error from None
                            raise
                        on_status(provider_name)  # a rotation inside acquire shows at once
                    fresh = await self._ensure_fresh(cred)
                    if isinstance(fresh, LoginError):
                        login_error = fresh
                        on_status(provider_name)
                        if pinned is not None:
                            raise fresh
                        if not is_permanent(fresh):
                            skip.add(cred.state_key)  # try again later, not in this request
                        continue
                    if pinned is not None:
                        pinned = fresh
                    cred = fresh
                attempts += 1
                if sink.sent_any:
                    # The client saw part of an answer that will not be finished.
                    sink.add({"kind": "restart", "attempt": attempts, "reason": last_reason})
                    sink.sent_any = False
                try:
                    message = await self._attempt(provider, request, cred, sink)
                except UpstreamFailure as exc:
                    last_reason = exc.failure.message
                    if exc.retryable:  # a dropped connection: nobody's fault, try again
                        network_failures += 1
                        if network_failures > NETWORK_RETRIES:
                            raise self._upstream_error(provider_name, exc) from None
                        continue
                    action = self.keypool.report_failure(cred, exc.failure)
                    if action is Action.REFRESH:
                        renewed = await self._refresh(cred, refreshed, exc)
                        if isinstance(renewed, Credential):
                            pinned, retry_now = (renewed, None) if pinned else (None, renewed)
                            continue
                        login_error = renewed
                        if not is_permanent(renewed):
                            skip.add(cred.state_key)
                        action = Action.RETRY  # rotate on to the next credential
                    on_status(provider_name)
                    if pinned is not None and login_error is not None:
                        raise login_error from None
                    if pinned is not None or action is Action.RETURN or attempts >= max_attempts:
                        raise self._upstream_error(provider_name, exc) from None
                    if action is Action.SKIP:
                        skip.add(cred.state_key)
                    continue
                self.keypool.report_success(cred)
                on_status(provider_name)
                return StreamOutcome(
                    stream_id=sink.stream_id,
                    model=request.model,
                    message=message,
                    credential=cred,
                    attempts=attempts,
                    cost=pricing.cost(request.model, message.usage, self.keypool.store.home),
                )
        finally:
            sink.flush()

    async def _acquire(
        self, provider: str, skip: set[str], last_reason: str, deadline: float
    ) -> Credential:
        while True:
            try:
                return self.keypool.acquire(provider, skip).credential
            except AllRateLimited as exc:
                wait = exc.retry_at - self.keypool.clock()
                if time.monotonic() + wait > deadline:
                    raise
                await asyncio.sleep(max(wait, 0.0) + 0.01)
            except CredentialRejected as exc:
                # Every credential refused for its scope: quote the provider's own words.
                if skip and last_reason:
                    message = f"{exc.message}. {provider} said: {last_reason}"
                    raise CredentialRejected(message, exc.data) from None
                raise

    async def _attempt(
        self, provider: Provider, request: StreamRequest, cred: Credential, sink: DeltaSink
    ) -> Message:
        message: Message | None = None
        # aclosing: whatever ends the loop (an error, a cancel) closes the upstream now.
        async with contextlib.aclosing(provider.stream(self.client, request, cred)) as deltas:
            async for delta in deltas:
                if isinstance(delta, MessageEnd):
                    message = delta.message
                else:
                    sink.add(delta_to_wire(delta))
        if message is None:  # the provider contract says this cannot happen
            raise UpstreamError("the provider's stream ended without a message")
        return message

    async def _ensure_fresh(self, cred: Credential) -> Credential | LoginError:
        """``cred`` renewed if its login is about to expire; a LoginError if it cannot be.

        A login that cannot be refreshed for good is rejected ("log in again"); one
        whose token endpoint is only unavailable for now is still used while its
        access token lasts.
        """
        if cred.kind != "oauth":
            return cred
        try:
            return await self.ensure_fresh(cred)
        except LoginError as err:
            if is_permanent(err):
                self.keypool.reject(cred, _log_in_again(err.message))
            elif cred.expires_at is not None and cred.expires_at > self.keypool.clock():
                return cred
            return err

    async def _refresh(
        self, cred: Credential, refreshed: set[str], exc: UpstreamFailure
    ) -> Credential | LoginError:
        """Refresh an OAuth login refused with a 401, once per request.

        The renewed credential, or the LoginError saying why not; a login that
        cannot be refreshed for good is rejected ("log in again").
        """
        if cred.state_key not in refreshed:
            refreshed.add(cred.state_key)
            try:
                return await self.refresher(cred)
            except LoginError as err:
                if is_permanent(err):
                    self.keypool.reject(cred, _log_in_again(err.message))
                return err
        # Refused again right after a refresh: the login itself is no longer accepted.
        message = _log_in_again(f"{cred.provider} refused the renewed login: {exc.failure.message}")
        self.keypool.reject(cred, message)
        return LoginError(message, {"provider": cred.provider, "reason": "rejected"})

    def _pinned(self, provider: str, profile: str) -> Credential:
        for cred in self.keypool.pool(provider):
            if cred.id == profile:
                return cred
        raise InvalidParams("profile", f"no usable {provider} credential {profile!r}")

    @staticmethod
    def _upstream_error(provider: str, exc: UpstreamFailure) -> UpstreamError | CredentialRejected:
        f = exc.failure
        data = {
            "provider": provider,
            "status": f.status,
            "type": f.error_type,
            "message": f.message,
            "class": f.failure_class.value,
        }
        text = f"{provider} answered {f.status or 'with an error'}: {f.message}"
        if f.failure_class.value in ("auth", "scope"):
            return CredentialRejected(text, data)
        return UpstreamError(text, data)


def _log_in_again(message: str) -> str:
    return message if "log in again" in message else f"{message}: log in again"
