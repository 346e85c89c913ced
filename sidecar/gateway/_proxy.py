"""One gateway request's attempt loop: which credential each try goes out on, and the
answer when none is left (the answer's way back is :mod:`~sidecar.gateway._relay`'s).

The attempt loop is the engine's: a :class:`~sidecar.rotation.failover.Failover` hands out
credentials (renewing OAuth logins) and decides after each failed attempt whether to
rotate, refresh, skip or give up, recording every outcome in the shared pool. What is
the gateway's own is the holding: a streamed answer is kept back until its first
content event or an error event, so that a 429 status, or an ``overloaded_error``
right after ``message_start``, is replayed on the next key without the client ever
seeing it. Once bytes went out they are the client's; a later error event passes
through as the provider sent it, and the key is still cooled.

A provider's daily budget (:mod:`sidecar.rotation.budget`) is checked before a request
goes out and its answer's cost counted after. The gateway never falls back to another
provider (docs/gateway.md): the body is the client's, in its flavour, for its model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
from collections.abc import Mapping

from aiohttp import web

from sidecar import pricing
from sidecar.credentials import Credential
from sidecar.errors import (
    AllRateLimited,
    BudgetExceeded,
    CredentialRejected,
    InvalidParams,
    LoginError,
    NoCredentials,
    SidecarError,
)
from sidecar.fingerprints import fingerprint
from sidecar.gateway._relay import Held, Relay, RequestLog
from sidecar.gateway._routes import Route
from sidecar.gateway._shapes import error_body
from sidecar.gateway._upstream import UPSTREAM_ERRORS, Upstream, lost, request_headers
from sidecar.providers import ProviderConfigError
from sidecar.rotation.failover import Failover, Refresher
from sidecar.rotation.keypool import KeyPool
from sidecar.rotation.routing import Routing
from sidecar.settings import Settings

__all__ = ["Proxy"]

log = logging.getLogger("sidecar.gateway")


# A request body past this is searched for its model rather than parsed whole: a
# coding tool's request of a few hundred KB took ~1 ms of json.loads before the first
# byte, the search a third of it.
_PARSE_LIMIT = 64 * 1024
_MODEL = re.compile(rb'"model"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _model_of(body: bytes) -> str | None:
    """The request's top-level ``model`` (for the log line and Azure's deployment)."""
    if len(body) > _PARSE_LIMIT:
        # Quotes inside a JSON string are escaped, so every hit is a key; if they all
        # name one model, that is the top-level one's (which a valid request has).
        found = set(_MODEL.findall(body))
        if len(found) == 1:
            with contextlib.suppress(ValueError):  # a bad escape: parse it all, below
                value = json.loads(b'"' + found.pop() + b'"')
                return value if isinstance(value, str) else None
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        return None
    model = doc.get("model") if isinstance(doc, dict) else None
    return model if isinstance(model, str) else None


class Proxy:
    def __init__(
        self,
        keypool: KeyPool,
        upstream: Upstream,
        *,
        settings: Settings,
        refresher: Refresher,
        ensure_fresh: Refresher,
        max_cooldown_wait: float,
    ) -> None:
        self.keypool = keypool
        self.upstream = upstream
        self.env = settings.env  # base URLs and Azure options, as the gateway's run read them
        self.relay = Relay(keypool, hold_for=settings.timeouts.read, limits=settings.limits)
        self.refresher = refresher
        self.ensure_fresh = ensure_fresh
        self.max_cooldown_wait = max_cooldown_wait
        self.routing = Routing(keypool.store, keypool.clock)

    def error(
        self,
        route_shape: str,
        status: int,
        error_type: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        return web.Response(
            status=status,
            body=error_body(route_shape, error_type, message),
            content_type="application/json",
            headers=headers,
        )

    async def handle(self, request: web.Request, route: Route, body: bytes) -> web.StreamResponse:
        entry = RequestLog(route.provider, _model_of(body))
        try:
            response = await self._handle(request, route, body, entry)
            entry.status = response.status
            return response
        except asyncio.CancelledError:
            if not entry.finished:
                entry.status = 499  # the client hung up early (nginx's number for it)
            raise
        finally:
            log.info("%s", entry.line())
            self._count_spend(entry)

    def _count_spend(self, entry: RequestLog) -> None:
        """Count an answer's cost against its provider's daily budget, if it has one."""
        if entry.usage is None or entry.model is None or entry.status >= 400:
            return
        if entry.provider not in self.routing.budgets():
            return
        cost = pricing.cost(entry.model, entry.usage, self.keypool.store.home)
        # Not awaited: a handler being cancelled must not wait on the store's lock.
        asyncio.get_running_loop().run_in_executor(
            None, self.routing.record_spend, entry.provider, cost.total
        )

    async def _handle(
        self, request: web.Request, route: Route, body: bytes, entry: RequestLog
    ) -> web.StreamResponse:
        try:
            self.routing.check_budget(route.provider)
        except BudgetExceeded as exc:
            # 402, never 429: a client would retry a rate limit until midnight.
            return self.error(route.shape, 402, "billing_error", f"llm-sidecar gateway: {exc}")
        try:
            url = route.upstream_url(self.env, entry.model, request.query_string)
        except ProviderConfigError as exc:
            return self.error(route.shape, 500, "api_error", f"llm-sidecar gateway: {exc}")
        failover = Failover(
            self.keypool,
            route.provider,
            profile=None,
            refresher=self.refresher,
            ensure_fresh=self.ensure_fresh,
            max_cooldown_wait=self.max_cooldown_wait,
            on_status=lambda provider: None,  # editors see the store change (statusfeed)
            model=entry.model,
        )
        last: Held | None = None
        while True:
            try:
                cred = await failover.next_credential()
            except SidecarError as err:
                return self._give_up(route, err, last)
            entry.attempts = failover.attempts
            entry.key = fingerprint(cred.secret)
            try:
                return await self._attempt(request, route, url, body, cred, entry)
            except Held as held:
                last = held
                if not route.replay:
                    # Sent once: the outcome still counts for the key, the answer is the client's.
                    self.keypool.report_failure(cred, held.failure.failure, entry.model)
                    return self._give_up(route, None, held)
                try:
                    await failover.after_failure(cred, held.failure)
                except SidecarError as err:
                    return self._give_up(route, err, held)

    def _earliest_retry(self, provider: str) -> float | None:
        """When every credential still in rotation is cooling down: the earliest end.

        The request's own error names its last attempt (a 401, say); but if the keys
        left are only cooling down, the client should hear "429, retry after N s".
        """
        usable = ("ok", "expiring", "coolingDown")  # not rejected, refused or expired
        states = [c for c in self.keypool.status(provider).credentials if c.state in usable]
        if states and all(c.resting_until for c in states):  # whole, or for a model
            return min(c.resting_until or 0.0 for c in states)
        return None

    def _give_up(self, route: Route, err: SidecarError | None, last: Held | None) -> web.Response:
        """The answer when no credential is left to try."""
        retry_at = err.retry_at if isinstance(err, AllRateLimited) else None
        if retry_at is None and err is not None:
            retry_at = self._earliest_retry(route.provider)
        if err is not None and retry_at is not None:
            # Seconds to the earliest usable key, so that clients back off for as long.
            wait = max(1, math.ceil(retry_at - time.time()))
            return self.error(
                route.shape,
                429,
                "rate_limit_error",
                f"llm-sidecar gateway: {err.message}",
                {"retry-after": str(wait)},
            )
        if last is not None and last.status is not None:
            # The provider's own answer, unchanged but for a key it may have echoed.
            return web.Response(status=last.status, body=last.body, headers=last.headers)
        if err is None:
            return self.error(route.shape, 502, "api_error", "llm-sidecar gateway: no answer")
        message = f"llm-sidecar gateway: {err.message}"
        if isinstance(err, NoCredentials | CredentialRejected | LoginError):
            return self.error(route.shape, 401, "authentication_error", message)
        if isinstance(err, InvalidParams):
            return self.error(route.shape, 400, "invalid_request_error", message)
        return self.error(route.shape, 502, "api_error", message)

    async def _attempt(
        self,
        request: web.Request,
        route: Route,
        url: str,
        body: bytes,
        cred: Credential,
        entry: RequestLog,
    ) -> web.StreamResponse:
        headers = request_headers(route, self.env, cred, request.headers)
        try:
            resp = await self.upstream.send(request.method, url, headers, body)
        except UPSTREAM_ERRORS as exc:
            raise Held(lost(exc, cred)) from None
        try:
            if resp.status >= 300:
                raise await self.relay.failed(resp, cred)
            if "text/event-stream" in resp.headers.get("content-type", ""):
                return await self.relay.stream(request, route, resp, cred, entry)
            return await self.relay.whole(route, resp, cred, entry)
        finally:
            # Also when the client went away, which cancels this handler: closing is
            # synchronous, so the cancellation cannot leave the upstream open. A body
            # not read to its end closes the connection instead of pooling it.
            if resp.content.at_eof():
                resp.release()
            else:
                resp.close()
