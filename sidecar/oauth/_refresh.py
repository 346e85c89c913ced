"""Refreshing OAuth logins on use, without ever racing another process.

Refresh tokens are single-use: when two sidecars refresh one login at once, the
second one's refresh token is already spent and the user is logged out. So a
refresh is serialized and re-reads the store before it spends anything:

1. take the provider's *refresh lock* (``.refresh-<provider>.lock`` in the home,
   a cross-process file lock; plus an asyncio lock so that streams of one process
   queue without each holding a worker thread);
2. re-read the login from the store. If its access token or expiry moved since we
   read it, another process (or stream) has refreshed it: use that token;
3. otherwise spend the refresh token at the token endpoint and write the new pair
   back where the login lives (its profile, or its pool entry) through the key pool,
   the only writer of credentials, in one short store transaction; then release the
   refresh lock.

Why a lock of its own rather than the store's: the store's lock guards every
write of every process (each rotation, each cooldown) and is meant to be held for
milliseconds. A refresh holds its lock across an HTTP request (seconds, retries
included), and the store lock is also taken on the event loop's thread, which
would then stall every stream of that process. Everything that writes a login's
tokens goes through this lock, so the re-read inside it is as good as one inside
the store's lock; the store's own lock still covers the write itself. The lock is
taken, and the request made, in a worker thread (``asyncio.to_thread``), so the
event loop keeps serving while a refresh is under way.

Static tokens (setup tokens, pasted tokens) have no refresh token and are never
refreshed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

from sidecar.credentials import Credential
from sidecar.errors import InvalidParams, LoginError
from sidecar.oauth._config import oauth_config
from sidecar.oauth._tokens import TokenClient
from sidecar.rotation.keypool import KeyPool

if TYPE_CHECKING:
    import httpx

__all__ = ["LOCK_TIMEOUT", "REFRESH_MARGIN", "TokenRefresher", "is_permanent"]

REFRESH_MARGIN = 60.0  # refresh a login that expires within this many seconds, before use
LOCK_TIMEOUT = 60.0  # seconds to wait for another process's refresh (its retries included)

# Failures that no retry will cure: the user has to log in again.
_PERMANENT = frozenset(
    {
        "invalid_grant",
        "invalid_client",
        "unauthorized_client",
        "no_refresh_token",
        "unsupported",
        "rejected",  # refused again right after a refresh
    }
)


def is_permanent(err: LoginError) -> bool:
    """Whether a refresh failure means "log in again" (not "try again later")."""
    return (err.data or {}).get("reason") in _PERMANENT


def _moved_on(stored: Credential, held: Credential) -> bool:
    return stored.secret != held.secret or (stored.expires_at or 0.0) > (held.expires_at or 0.0)


class TokenRefresher:
    """The engine's hooks: :meth:`ensure_fresh` before use, :meth:`refresh` after a 401."""

    def __init__(
        self,
        keypool: KeyPool,
        env: Mapping[str, str],
        *,
        margin: float = REFRESH_MARGIN,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keypool = keypool
        self.env = env  # the sidecar's settings' environment: the token endpoint
        self.margin = margin
        self._transport = transport
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}

    def needs_refresh(self, cred: Credential) -> bool:
        return (
            cred.kind == "oauth"
            and bool(cred.refresh)
            and cred.expires_at is not None
            and cred.expires_at - self._clock() < self.margin
        )

    async def ensure_fresh(self, cred: Credential) -> Credential:
        """``cred``, or its renewed self when it expires within the margin."""
        if not self.needs_refresh(cred):
            return cred
        return await self._run(cred, forced=False)

    async def refresh(self, cred: Credential) -> Credential:
        """Renew ``cred`` after the provider refused its access token (a 401)."""
        if cred.kind != "oauth" or not cred.refresh:
            raise self._error(
                cred, "this credential cannot be refreshed: log in again", "no_refresh_token"
            )
        return await self._run(cred, forced=True)

    async def _run(self, cred: Credential, *, forced: bool) -> Credential:
        lock = self._locks.setdefault(cred.provider, asyncio.Lock())
        async with lock:
            return await asyncio.to_thread(self.refresh_sync, cred, forced=forced)

    def refresh_sync(self, cred: Credential, *, forced: bool) -> Credential:
        """The refresh itself (blocking): see the module's description of the steps."""
        store = self.keypool.store
        try:
            config = oauth_config(cred.provider, self.env)
        except InvalidParams:
            raise self._error(
                cred, f"{cred.provider} logins cannot be refreshed: log in again", "unsupported"
            ) from None
        store.ensure_home()
        lock = FileLock(
            store.home / f".refresh-{cred.provider}.lock", timeout=LOCK_TIMEOUT, mode=0o600
        )
        try:
            lock.acquire()
        except Timeout:
            raise self._error(
                cred,
                f"another llm-sidecar process has been refreshing the {cred.provider} login "
                f"for over {LOCK_TIMEOUT:.0f} s; try again",
                "busy",
            ) from None
        try:
            stored = self.keypool.stored_login(cred)
            current = stored or cred
            if stored is not None and _moved_on(stored, cred):
                # Refreshed elsewhere since we read it: after a 401 on the old token the
                # new one is the thing to try; before use, only if it is fresh enough.
                if forced or not self.needs_refresh(stored):
                    return stored
            elif not forced and not self.needs_refresh(current):
                return current
            if not current.refresh:
                raise self._error(
                    cred, "the login has no refresh token: log in again", "no_refresh_token"
                )
            tokens = TokenClient(config, transport=self._transport, clock=self._clock).refresh(
                current.refresh
            )
            # The key pool writes it (the only writer of credentials), where the login
            # lives now: its profile, or the pool entry `keyAdd` moved it to.
            renewed = self.keypool.renew_login(
                current, secret=tokens.access, refresh=tokens.refresh, expires_at=tokens.expires_at
            )
            return renewed
        finally:
            lock.release()

    @staticmethod
    def _error(cred: Credential, message: str, reason: str) -> LoginError:
        return LoginError(message, {"provider": cred.provider, "reason": reason})
