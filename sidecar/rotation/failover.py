"""One request's way through the key pool: which credential next, what a failure does.

A :class:`Failover` lives for one request (a stream, a model list, a gateway
call). It hands out a credential for each attempt (the pool's current one, a
pinned profile, or a login just refreshed), renews OAuth logins that are about to
expire, and after a failed attempt decides: try again, rotate on, or give up
with the error that tells the user what to do. :meth:`Failover.run` is that loop
for a caller whose attempt either answers or raises an ``UpstreamFailure``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from sidecar.credentials import Credential
from sidecar.errors import (
    AllRateLimited,
    CredentialRejected,
    InvalidParams,
    LoginError,
    NoCredentials,
    SidecarError,
    UpstreamError,
)
from sidecar.oauth import is_permanent
from sidecar.providers import UpstreamFailure
from sidecar.rotation.attempts import Tally
from sidecar.rotation.classify import FailureClass
from sidecar.rotation.headroom import Window
from sidecar.rotation.keypool import KeyPool
from sidecar.rotation.rules import Action

__all__ = ["NETWORK_RETRIES", "Failover", "Refresher", "upstream_error"]

# Renews an OAuth login and returns the renewed credential; raises LoginError.
Refresher = Callable[[Credential], Awaitable[Credential]]
OnStatus = Callable[[str], object]
T = TypeVar("T")

NETWORK_RETRIES = 2  # a dropped connection or 5xx is retried this often, then reported


class Failover:
    def __init__(
        self,
        keypool: KeyPool,
        provider: str,
        *,
        profile: str | None,
        refresher: Refresher,
        ensure_fresh: Refresher,
        max_cooldown_wait: float,
        on_status: OnStatus,
        model: str | None = None,
    ) -> None:
        """``model``: the request's, so that a per-model limit cools only that model."""
        self.keypool = keypool
        self.provider = provider
        self.model = model
        self.refresher = refresher
        self.ensure_fresh = ensure_fresh
        self.on_status = on_status
        self.pinned = self._pinned(profile) if profile else None  # a profile: no rotation
        self.skip: set[str] = set()  # not to be tried again in this request
        self.refreshed: set[str] = set()  # logins refreshed once already after a 401
        self.retry_now: Credential | None = None  # a just-refreshed login, retried at once
        self.login_error: LoginError | None = None  # why a login could not be refreshed
        self.tally = Tally(provider)  # what each credential tried ran into: the final error
        self.last_reason = ""  # the provider's last complaint, for restart deltas
        self.attempts = 0  # credentials handed out so far; only next_credential counts
        self.network_failures = 0
        # From the parsed store when no file changed since (no disk read on the loop).
        pool = keypool.pool(provider, keypool.store.peek())
        self.max_attempts = 2 * len(pool) + NETWORK_RETRIES + 2
        # When every key is cooling down, wait for one until this moment, no longer.
        self.deadline = time.monotonic() + max_cooldown_wait

    # -- the loop ------------------------------------------------------------------

    async def run(self, attempt: Callable[[Credential], Awaitable[T]]) -> tuple[Credential, T]:
        """Call ``attempt`` on one credential after another until one answers: that
        credential and its answer, for the caller to report with :meth:`succeeded`.

        ``attempt`` raises UpstreamFailure for a failed attempt; giving up raises the
        user's error (see :meth:`after_failure`)."""
        while True:
            cred = await self.next_credential()
            try:
                return cred, await attempt(cred)
            except UpstreamFailure as exc:
                await self.after_failure(cred, exc)  # raises when it gives up

    async def succeeded(self, cred: Credential, windows: Iterable[Window] = ()) -> None:
        """Record that ``cred`` answered (with the rate-limit windows it reported)."""
        windows = tuple(windows)
        # Kept in memory on the loop; a visible change is a store transaction, which may
        # wait for another process's lock: in a thread, as acquire's.
        if self.keypool.success_writes(cred, model=self.model, windows=windows):
            await asyncio.to_thread(
                self.keypool.report_success, cred, model=self.model, windows=windows
            )
        else:
            self.keypool.report_success(cred, model=self.model, windows=windows)
        self.on_status(self.provider)

    # -- choosing ------------------------------------------------------------------

    async def next_credential(self) -> Credential:
        """The credential for the next attempt, counted in :attr:`attempts`; raises when
        none is left."""
        cred = await self._next_credential()
        self.attempts += 1  # owned here: the give-up rule in after_failure counts on it
        return cred

    async def _next_credential(self) -> Credential:
        while True:
            if self.retry_now is not None:
                cred, self.retry_now = self.retry_now, None
                return cred
            cred = self.pinned if self.pinned is not None else await self._acquire()
            fresh = await self._ensure_fresh(cred)
            if isinstance(fresh, Credential):
                if self.pinned is not None:
                    self.pinned = fresh
                return fresh
            self.login_error = fresh
            self.tally.login_failed(cred, fresh)
            self.on_status(self.provider)
            if self.pinned is not None:
                raise fresh
            if not is_permanent(fresh):
                self.skip.add(cred.state_key)  # its token endpoint is down: not now

    async def _acquire(self) -> Credential:
        while True:
            try:
                # From the parsed store when nothing changed (no thread hop before the
                # first byte); else off the loop: a rotation is a store transaction,
                # which may wait for the lock.
                choice = self.keypool.acquire_cached(self.provider, self.skip, self.model)
                if choice is None:
                    choice = await asyncio.to_thread(
                        self.keypool.acquire, self.provider, self.skip, self.model
                    )
            except AllRateLimited as exc:
                wait = exc.retry_at - self.keypool.clock()
                if time.monotonic() + wait > self.deadline:
                    raise self.tally.give_up(exc) from None
                await asyncio.sleep(max(wait, 0.0) + _jitter(wait))
                continue
            except (CredentialRejected, NoCredentials) as exc:
                # The pool now says what is left; the user needs what happened: the
                # last attempt's error, counting the credentials this request tried.
                raise self.tally.give_up(exc) from None
            if choice.rotated:
                self.on_status(self.provider)  # a rotation inside acquire shows at once
            return choice.credential

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
                await asyncio.to_thread(self.keypool.reject, cred, _log_in_again(err.message))
            elif cred.expires_at is not None and cred.expires_at > self.keypool.clock():
                return cred
            return err

    def _pinned(self, profile: str) -> Credential:
        for cred in self.keypool.pool(self.provider):
            if cred.id == profile:
                return cred
        raise InvalidParams("profile", f"no usable {self.provider} credential has that id")

    # -- after a failed attempt -----------------------------------------------------

    async def after_failure(self, cred: Credential, exc: UpstreamFailure) -> None:
        """Record a failed attempt of ``cred``; raise the user's error when giving up."""
        self.last_reason = exc.failure.message
        if exc.retryable:  # a dropped connection: nobody's fault, try again
            self.network_failures += 1
            if self.network_failures > NETWORK_RETRIES:
                raise upstream_error(self.provider, exc) from None
            return
        self.tally.failed(cred, exc.failure)
        action = await asyncio.to_thread(self.keypool.report_failure, cred, exc.failure, self.model)
        if action is Action.REFRESH:
            renewed = await self._refresh(cred, exc)
            if isinstance(renewed, Credential):
                if self.pinned is not None:
                    self.pinned = renewed
                else:
                    self.retry_now = renewed
                return
            self.login_error = renewed
            self.tally.login_failed(cred, renewed)
            if not is_permanent(renewed):
                self.skip.add(cred.state_key)
            action = Action.RETRY  # rotate on to the next credential
        self.on_status(self.provider)
        if self.pinned is not None and self.login_error is not None:
            raise self.login_error from None
        if self.pinned is not None or action is Action.RETURN:
            raise upstream_error(self.provider, exc) from None
        if self.attempts >= self.max_attempts:
            raise await self._out_of_attempts(exc) from None
        if action is Action.SKIP:
            self.skip.add(cred.state_key)

    async def _out_of_attempts(self, exc: UpstreamFailure) -> SidecarError:
        """The error when this request may try no more credentials.

        After a rate limit it is -32002 with the moment the pool has a key again, as
        when every key was cooling down from the start: the user is told when to retry
        (the provider's bare 429, -32004 with no time, was what the goodput benchmark's
        users got under overload).
        """
        if exc.failure.failure_class is not FailureClass.RATE_LIMIT:
            return upstream_error(self.provider, exc)
        try:
            await asyncio.to_thread(self.keypool.acquire, self.provider, (), self.model)
        except AllRateLimited as pool_says:
            return self.tally.give_up(pool_says)
        except SidecarError:
            pass  # none left for another reason: the last answer's own time, below
        else:
            # A key is usable right now: only this request's attempts ran out.
            now = self.keypool.clock()
            return self.tally.give_up(AllRateLimited("", {}, retry_at=now))
        return self.tally.give_up(upstream_error(self.provider, exc))

    async def _refresh(self, cred: Credential, exc: UpstreamFailure) -> Credential | LoginError:
        """Refresh an OAuth login refused with a 401, once per request.

        The renewed credential, or the LoginError saying why not; a login that
        cannot be refreshed for good is rejected ("log in again").
        """
        if cred.state_key not in self.refreshed:
            self.refreshed.add(cred.state_key)
            try:
                return await self.refresher(cred)
            except LoginError as err:
                if is_permanent(err):
                    await asyncio.to_thread(self.keypool.reject, cred, _log_in_again(err.message))
                return err
        # Refused again right after a refresh: the login itself is no longer accepted.
        message = _log_in_again(f"{cred.provider} refused the renewed login: {exc.failure.message}")
        await asyncio.to_thread(self.keypool.reject, cred, message)
        return LoginError(message, {"provider": cred.provider, "reason": "rejected"})


def upstream_error(provider: str, exc: UpstreamFailure) -> UpstreamError | CredentialRejected:
    """The JSON-RPC error for a provider failure the request gives up on."""
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


def _jitter(wait: float) -> float:
    """A random spread for requests that wait on an exhausted pool: without it they all
    wake at the same instant and spend the freed key's first window at once (the
    goodput benchmark's thundering herd). A tenth of the wait, at least 10 ms, at most
    a second."""
    return random.uniform(0.01, min(1.0, max(0.02, wait * 0.1)))


def _log_in_again(message: str) -> str:
    return message if "log in again" in message else f"{message}: log in again"
