"""The link to a team's Redis: push what this machine saw, merge what others saw.

Unlike :mod:`sidecar.team._names` (naming) and the key pool (the only writer of the
local state) this owns the connection. The local files stay the working state: every
request decides on them alone, so no request ever waits for Redis. An entry the pool
wrote is queued here and written by a background task (one script per entry: keep
the greater order, then publish); entries published by other machines arrive by
pub/sub and are handed to the key pool to merge. Redis lost: the status says so once,
the task reconnects with a capped backoff, and on reconnecting both sides are merged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sidecar.team._config import TeamConfig
from sidecar.team._names import Entry, Names, credential_hash

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from sidecar.credentials import Credential

__all__ = ["Link", "LocalState", "TeamSync"]

log = logging.getLogger(__name__)

Link = Literal["connecting", "online", "offline"]

# Every call is bounded: a stalled server must not hold an outcome back for long.
CALL_TIMEOUT = 1.0
BACKOFF_FIRST, BACKOFF_CAP = 0.5, 30.0
# How often a quiet link checks that the server and the namespace are still there.
CHECK_EVERY = 5.0
# Entries waiting for the server; more are dropped (a reconnect pushes every entry).
QUEUE_SIZE = 1000
# At exit, how long what is queued may take to reach the server.
FLUSH_WAIT = 1.0

# KEYS[1]: the entry's name. ARGV: the entry (JSON, with its "_order"), its order, its
# time to live (ms), the channel, the message. An entry of no greater order than the
# stored one changes nothing and is not published: a cooldown is only ever extended.
_PUT = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, old = pcall(cjson.decode, cur)
  if ok and type(old) == 'table' and (tonumber(old['_order']) or 0) >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
"""


class LocalState(Protocol):
    """What the link needs of the key pool (:class:`sidecar.rotation.sharing.SharedPool`)."""

    def team_credentials(self) -> list[Credential]:
        """Every credential a team can share (keys and static tokens, not logins)."""

    def team_entries(self) -> list[tuple[Credential, Entry]]:
        """Every shared entry this machine holds, with its credential."""

    def merge_remote(self, section: str, cred: Credential, doc: dict[str, Any]) -> bool:
        """Merge one entry another machine saw; whether the local state changed."""

    def forget_remote(self, cred: Credential) -> None:
        """Another machine's user reset this credential: drop its shared entries here."""


class TeamSync:
    def __init__(
        self,
        config: TeamConfig,
        local: LocalState,
        *,
        on_link: Callable[[Link], object] = lambda link: None,
    ) -> None:
        self.config = config
        self.local = local
        self.names = Names(config.namespace)
        self.link: Link = "connecting"
        self._on_link = on_link
        self._origin = secrets.token_hex(8)  # our own messages come back: skip them
        self._salt: bytes | None = None
        # An entry to push, or (None: the user reset that credential here).
        self._queue: asyncio.Queue[tuple[Credential, Entry | str]] = asyncio.Queue(QUEUE_SIZE)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._warned = False
        self._busy = False  # an entry taken from the queue is on its way

    # -- called by the key pool, from any thread -------------------------------------

    def publish(self, cred: Credential, entry: Entry) -> None:
        """Queue one changed entry for the team; never blocks, never raises."""
        self._send(cred, entry)

    def forget(self, provider: str, creds: list[Credential]) -> None:
        """The user reset ``provider`` here (``keyReset``): the team forgets what it saw too."""
        for cred in creds:
            self._send(cred, provider)

    def _send(self, cred: Credential, item: Entry | str) -> None:
        if self._loop is None or cred.kind == "oauth":  # a login is one person's
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: we are shutting down
            self._loop.call_soon_threadsafe(self._enqueue, (cred, item))

    def _enqueue(self, item: tuple[Credential, Entry | str]) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # offline a long time: see QUEUE_SIZE
            self._queue.put_nowait(item)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name="team-state")

    async def aclose(self) -> None:
        """Stop, after pushing what is queued if the link is up (bounded: see FLUSH_WAIT)."""
        if self._task is not None:
            for _ in range(int(FLUSH_WAIT / 0.01)):
                if self.link != "online" or (self._queue.empty() and not self._busy):
                    break
                await asyncio.sleep(0.01)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        from redis.exceptions import RedisError

        backoff = BACKOFF_FIRST
        while True:
            client = self._client()
            try:
                await self._session(client)
            except (RedisError, OSError, TimeoutError) as exc:
                if self.link == "online":  # it ran a while: start small again
                    backoff = BACKOFF_FIRST
                self._set_link("offline", exc)
            finally:
                await _close(client)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_CAP)

    def _client(self) -> Redis:
        from redis.asyncio import Redis

        return Redis.from_url(
            self.config.url,
            socket_timeout=CALL_TIMEOUT,
            socket_connect_timeout=CALL_TIMEOUT,
            decode_responses=False,
        )

    async def _session(self, client: Redis) -> None:
        """One connection's life: salt, merge both ways, then push and listen."""
        await client.set(self.names.salt, secrets.token_hex(32), nx=True)
        salt = await client.get(self.names.salt)
        if not salt:
            raise OSError("the namespace's salt could not be read")
        self._salt = salt if isinstance(salt, bytes) else salt.encode()
        put = client.register_script(_PUT)
        pubsub = client.pubsub()
        await pubsub.subscribe(self.names.channel)
        try:
            await self._pull(client)
            for cred, entry in await asyncio.to_thread(self.local.team_entries):
                await self._put(put, cred, entry)
            self._set_link("online")
            await self._serve(client, put, pubsub, salt)
        finally:
            await _close(pubsub)

    async def _serve(self, client: Redis, put: Any, pubsub: Any, salt: bytes | str) -> None:
        listen = asyncio.ensure_future(self._listen(pubsub))
        get: asyncio.Future[Any] | None = None
        try:
            while True:
                get = get or asyncio.ensure_future(self._queue.get())
                done, _ = await asyncio.wait(
                    {get, listen}, timeout=CHECK_EVERY, return_when=asyncio.FIRST_COMPLETED
                )
                if listen in done:
                    listen.result()  # raises what ended the subscription
                    raise OSError("the subscription ended")
                if get in done:
                    cred, item = get.result()
                    get = None
                    self._busy = True
                    try:
                        if isinstance(item, Entry):
                            await self._put(put, cred, item)
                        else:
                            await self._forget(client, item, cred)
                    finally:
                        self._busy = False
                elif await client.get(self.names.salt) != salt:
                    # Quiet for a while: make sure the server is still there, and still
                    # the same namespace (a flush drops the salt; every machine then
                    # starts over with a new one).
                    raise OSError("the namespace was reset")
        finally:
            listen.cancel()
            if get is not None:
                get.cancel()

    # -- the two directions ------------------------------------------------------------

    def _digest(self, provider: str, cred: Credential) -> str:
        assert self._salt is not None
        return credential_hash(self._salt, provider, cred.secret)

    async def _put(self, put: Any, cred: Credential, entry: Entry) -> None:
        now = time.time()
        ttl_ms = int((entry.until - now) * 1000)
        if ttl_ms <= 0:
            return  # it says nothing any more
        digest = self._digest(entry.provider, cred)
        doc = {**entry.doc, "_order": entry.order}
        message = json.dumps(
            {
                "origin": self._origin,
                "section": entry.section,
                "provider": entry.provider,
                "hash": digest,
                "entry": doc,
            }
        )
        name = self.names.entry(entry.section, entry.provider, digest, entry.scope)
        await put(
            keys=[name], args=[json.dumps(doc), entry.order, ttl_ms, self.names.channel, message]
        )

    async def _forget(self, client: Redis, provider: str, cred: Credential) -> None:
        digest = self._digest(provider, cred)
        names = [
            k async for k in client.scan_iter(match=self.names.of_credential(provider, digest))
        ]
        message = {"origin": self._origin, "forget": True, "provider": provider, "hash": digest}
        pipe = client.pipeline(transaction=True)
        if names:
            pipe.delete(*names)
        pipe.publish(self.names.channel, json.dumps(message))
        await pipe.execute()

    async def _pull(self, client: Redis) -> None:
        """Merge every shared entry of a credential this machine holds."""
        async for raw_key in client.scan_iter(match=self.names.entries, count=500):
            key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
            parsed = self.names.parse(key)
            raw = await client.get(key) if parsed is not None else None
            if parsed is not None and raw is not None:
                await self._merge(*parsed, raw)

    async def _listen(self, pubsub: Any) -> None:
        async for message in pubsub.listen():
            if message.get("type") != "message":
                continue
            try:
                doc = json.loads(message["data"])
            except (ValueError, TypeError):
                continue
            if not isinstance(doc, dict) or doc.get("origin") == self._origin:
                continue
            section, provider, digest = doc.get("section"), doc.get("provider"), doc.get("hash")
            if not (isinstance(provider, str) and isinstance(digest, str)):
                continue
            if doc.get("forget") is True:
                cred = await self._local_credential(provider, digest)
                if cred is not None:
                    await asyncio.to_thread(self.local.forget_remote, cred)
            elif isinstance(section, str):
                await self._merge(section, provider, digest, json.dumps(doc.get("entry")))

    async def _merge(self, section: str, provider: str, digest: str, raw: bytes | str) -> None:
        try:
            doc = json.loads(raw)
        except ValueError:
            return
        if not isinstance(doc, dict):
            return
        cred = await self._local_credential(provider, digest)
        if cred is not None:
            await asyncio.to_thread(self.local.merge_remote, section, cred, doc)

    async def _local_credential(self, provider: str, digest: str) -> Credential | None:
        """This machine's credential a team's hash names; None when we do not hold it."""
        if self._salt is None:
            return None
        for cred in await asyncio.to_thread(self.local.team_credentials):
            if cred.provider == provider and self._digest(provider, cred) == digest:
                return cred
        return None

    def _set_link(self, link: Link, exc: BaseException | None = None) -> None:
        if link == "offline" and not self._warned:
            # Once per process, and only what kind of failure: the URL may hold a password.
            log.warning("team state offline (%s); serving on local state", type(exc).__name__)
            self._warned = True
        if link == "online" and self.link != "online":
            log.info("team state online: %s", self.config.shown)
            self._warned = False
        if link != self.link:
            self.link = link
            self._on_link(link)


async def _close(thing: Any) -> None:
    # Closing a dead connection may fail in many ways: it is gone either way.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(thing.aclose(), CALL_TIMEOUT)
