"""The link to a team's Redis: push what this machine saw, merge what others saw.

Unlike :mod:`sidecar.team._names` (naming) and the key pool (the only writer of the
local state) this owns the connection. The local files stay the working state: every
request decides on them alone, so no request ever waits for Redis. An entry the pool
wrote (or a move of its current key) is queued here and written by a task on the
link's own thread and event loop (one script per entry: keep the greater order, then
publish); entries published by other machines arrive by pub/sub and are handed to the
key pool to merge. Usage counts are added up in Redis (one script per batch) and the
team's totals kept here for status. Redis lost: the status says so once, the task
reconnects with a capped backoff, and on reconnecting both sides are merged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

import attrs

from sidecar.team._config import TeamConfig
from sidecar.team._names import (
    POSITION,
    USAGE,
    Counts,
    Entry,
    Names,
    credential_hash,
    pool_hash,
)

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


# KEYS[1]: the batch's mark, KEYS[2…]: usage counters. ARGV: the mark's and the
# counters' time to live (ms), the channel, our origin, then per counter the requests,
# failures and last use to add. HINCRBY: two machines counting at once never lose each
# other's counts; the mark makes a batch sent again (its answer lost) add nothing. The
# totals are published: every machine's status shows the team's sum.
_COUNT = """
local fresh = redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1])
local totals, out = {}, {}
for i = 2, #KEYS do
  local at = 5 + (i - 2) * 3
  if fresh then
    redis.call('HINCRBY', KEYS[i], 'requests', ARGV[at])
    redis.call('HINCRBY', KEYS[i], 'failures', ARGV[at + 1])
    local last = tonumber(redis.call('HGET', KEYS[i], 'lastUsed')) or 0
    if tonumber(ARGV[at + 2]) > last then
      redis.call('HSET', KEYS[i], 'lastUsed', ARGV[at + 2])
    end
  end
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
  local row = redis.call('HMGET', KEYS[i], 'requests', 'failures', 'lastUsed')
  totals[KEYS[i]] = row
  out[#out + 1] = row
end
redis.call('PUBLISH', ARGV[3], cjson.encode({origin = ARGV[4], usage = totals}))
return out
"""
BATCH_MARK_MS = 10 * 60 * 1000  # a batch is sent again within the reconnect backoff's cap
USAGE_FOR_MS = 30 * 86400 * 1000  # a key nobody used for this long forgets its counts


POSITION_FOR = 86400.0  # a pool nobody moved on for this long has no team position


@attrs.frozen
class _Position:
    """This machine moved to ``current`` of the pool ``creds`` at ``at``."""

    creds: tuple[Credential, ...]
    current: Credential
    rotated: bool
    at: float


@attrs.define
class _Pending:
    """Counts of one credential this machine made and the team has not added yet."""

    cred: Credential
    requests: int = 0
    failures: int = 0
    last_used: float = 0.0


_Item = Entry | _Position | str


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

    def merge_position(self, cred: Credential, doc: dict[str, Any]) -> bool:
        """Another machine of the team moved to ``cred``; whether this one did too."""


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
        # An entry to push, a position, or a provider (the user reset that credential).
        self._queue: asyncio.Queue[tuple[Credential, _Item]] = asyncio.Queue(QUEUE_SIZE)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._warned = False
        # Items queued and not yet through (taken off the queue is not through: a batch
        # of counts may be on its way meanwhile); aclose waits for them.
        self._unsent = 0
        # Usage counts not yet added to the team's (by state key), the batch on its way
        # (its mark, its rows: sent again as it was if its answer was lost), and the
        # team's totals as last heard, by (provider, hash).
        self._counts: dict[str, _Pending] = {}
        self._batch: tuple[str, list[_Pending]] | None = None
        self._counted = asyncio.Event()
        self._totals: dict[tuple[str, str], Counts] = {}
        # Set once the link is first online (the team's state pulled) or offline.
        self._settled = threading.Event()
        # The caller's loop, and the link's own thread (see start).
        self._home: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- called by the key pool, from any thread -------------------------------------

    def publish(self, cred: Credential, entry: Entry) -> None:
        """Queue one changed entry for the team; never blocks, never raises."""
        self._send(cred, entry)

    def position(
        self, creds: list[Credential], current: Credential, rotated: bool, when: float
    ) -> None:
        """This machine moved to ``current`` of the pool ``creds`` (sticky): the team's key."""
        shared = tuple(c for c in creds if c.kind != "oauth")
        if len(shared) > 1:
            self._send(current, _Position(shared, current, rotated, when))

    def forget(self, provider: str, creds: list[Credential]) -> None:
        """The user reset ``provider`` here (``keyReset``): the team forgets what it saw too."""
        for cred in creds:
            self._send(cred, provider)

    def count(self, cred: Credential, requests: int, failures: int, when: float) -> None:
        """Add this machine's requests and failures of ``cred`` to the team's counters;
        never blocks, never raises. Kept while offline and added on reconnecting."""
        if self._loop is None or cred.kind == "oauth":
            return
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._add_count, cred, requests, failures, when)

    def usage_of(self, cred: Credential) -> Counts | None:
        """The team's counts of ``cred`` while the link is up; None: only ours are known."""
        if self.link != "online" or self._salt is None or cred.kind == "oauth":
            return None
        return self._totals.get((cred.provider, self._digest(cred.provider, cred)), Counts())

    def _add_count(self, cred: Credential, requests: int, failures: int, when: float) -> None:
        pending = self._counts.setdefault(cred.state_key, _Pending(cred))
        pending.requests += requests
        pending.failures += failures
        pending.last_used = max(pending.last_used, when)
        self._counted.set()

    def _send(self, cred: Credential, item: _Item) -> None:
        if self._loop is None or cred.kind == "oauth":  # a login is one person's
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: we are shutting down
            self._loop.call_soon_threadsafe(self._enqueue, (cred, item))

    def _enqueue(self, item: tuple[Credential, _Item]) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # offline a long time: see QUEUE_SIZE
            self._queue.put_nowait(item)
            self._unsent += 1

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Run the link on a thread of its own, on an event loop of its own: its Redis
        round trips, the team's messages and their merges never take turns with the
        caller's requests on the caller's loop (a failover stays as fast as with the
        files alone). Called on the caller's running loop, where ``on_link`` is called."""
        self._home = asyncio.get_running_loop()
        started = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._task = loop.create_task(self._run(), name="team-state")
            started.set()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(self._task)
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

        self._thread = threading.Thread(target=main, name="team-state", daemon=True)
        self._thread.start()
        started.wait()

    async def settled(self, timeout: float = 2 * CALL_TIMEOUT) -> Link:
        """Wait (at most ``timeout``) until the team's state is pulled or the server is
        found unreachable; for a command that decides once, right after starting."""
        await asyncio.to_thread(self._settled.wait, timeout)
        return self.link

    async def aclose(self) -> None:
        """Stop, after pushing what is queued if the link is up (bounded: see FLUSH_WAIT)."""
        if self._loop is None or self._task is None or self._thread is None:
            return
        for _ in range(int(FLUSH_WAIT / 0.01)):
            idle = self._unsent == 0
            if self.link != "online" or (idle and not self._counts and self._batch is None):
                break
            await asyncio.sleep(0.01)
        with contextlib.suppress(RuntimeError):  # its loop has ended already
            self._loop.call_soon_threadsafe(self._task.cancel)
        await asyncio.to_thread(self._thread.join, FLUSH_WAIT + 2 * CALL_TIMEOUT)

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
        count = client.register_script(_COUNT)
        pubsub = client.pubsub()
        await pubsub.subscribe(self.names.channel)
        try:
            await self._pull(client)
            for cred, entry in await asyncio.to_thread(self.local.team_entries):
                await self._put(put, self._digest(entry.provider, cred), entry)
            await self._add_counts(count)  # what was counted while offline
            self._set_link("online")
            await self._serve(client, put, count, pubsub, salt)
        finally:
            await _close(pubsub)

    async def _serve(
        self, client: Redis, put: Any, count: Any, pubsub: Any, salt: bytes | str
    ) -> None:
        listen = asyncio.ensure_future(self._listen(pubsub))
        get: asyncio.Future[Any] | None = None
        counted: asyncio.Future[Any] | None = None
        try:
            while True:
                get = get or asyncio.ensure_future(self._queue.get())
                counted = counted or asyncio.ensure_future(self._counted.wait())
                done, _ = await asyncio.wait(
                    {get, listen, counted},
                    timeout=CHECK_EVERY,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if listen in done:
                    listen.result()  # raises what ended the subscription
                    raise OSError("the subscription ended")
                if get in done:  # a cooldown first: counts can wait a moment
                    cred, item = get.result()
                    get = None
                    try:
                        if isinstance(item, Entry):
                            await self._put(put, self._digest(item.provider, cred), item)
                        elif isinstance(item, _Position):
                            await self._put_position(put, cred, item)
                        else:
                            await self._forget(client, item, cred)
                    finally:
                        self._unsent -= 1
                if counted in done:
                    counted = None
                    self._counted.clear()
                    await self._add_counts(count)
                if not done and await client.get(self.names.salt) != salt:
                    # Quiet for a while: make sure the server is still there, and still
                    # the same namespace (a flush drops the salt; every machine then
                    # starts over with a new one).
                    raise OSError("the namespace was reset")
        finally:
            self._unsent = self._queue.qsize()  # an item taken and not sent is lost
            listen.cancel()
            for waiting in (get, counted):
                if waiting is not None:
                    waiting.cancel()

    # -- the two directions ------------------------------------------------------------

    def _digest(self, provider: str, cred: Credential) -> str:
        assert self._salt is not None
        return credential_hash(self._salt, provider, cred.secret)

    def _pool_digest(
        self, provider: str, creds: tuple[Credential, ...] | list[Credential]
    ) -> str | None:
        assert self._salt is not None
        return pool_hash(self._salt, provider, [self._digest(provider, c) for c in creds])

    async def _put_position(self, put: Any, cred: Credential, moved: _Position) -> None:
        pool = self._pool_digest(cred.provider, moved.creds)
        doc = {"current": self._digest(cred.provider, cred), "rotated": moved.rotated}
        if pool is not None:
            entry = Entry(cred.provider, POSITION, None, doc, moved.at, moved.at + POSITION_FOR)
            await self._put(put, pool, entry)

    async def _put(self, put: Any, digest: str, entry: Entry) -> None:
        """Write ``entry`` under ``digest`` (a credential's, or a pool's) if it is newer."""
        now = time.time()
        ttl_ms = int((entry.until - now) * 1000)
        if ttl_ms <= 0:
            return  # it says nothing any more
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

    async def _add_counts(self, count: Any) -> None:
        """Add the counts made since the last batch (first the batch whose answer was
        lost, as it was: its mark keeps it from being added twice)."""
        if self._batch is None and self._counts:
            self._batch = (secrets.token_hex(16), list(self._counts.values()))
            self._counts = {}
        if self._batch is None:
            return
        mark, rows = self._batch
        keys = [self.names.batch(mark)]
        args: list[Any] = [BATCH_MARK_MS, USAGE_FOR_MS, self.names.channel, self._origin]
        for row in rows:
            provider = row.cred.provider
            keys.append(self.names.usage(provider, self._digest(provider, row.cred)))
            args += [row.requests, row.failures, repr(row.last_used)]
        totals = await count(keys=keys, args=args)
        self._batch = None
        for name, row in zip(keys[1:], totals, strict=False):
            self._note_totals(name, row)
        if self._counts:
            self._counted.set()

    def _note_totals(self, name: str | bytes, row: object) -> None:
        text = name.decode() if isinstance(name, bytes) else name
        parsed = self.names.parse(text)
        counts = Counts.from_row(row)
        if parsed is None or parsed[0] != USAGE or counts is None:
            return
        where = (parsed[1], parsed[2])
        if counts.newer_than(self._totals.get(where)):
            self._totals[where] = counts

    async def _forget(self, client: Redis, provider: str, cred: Credential) -> None:
        digest = self._digest(provider, cred)
        names = [
            k
            async for k in client.scan_iter(
                match=self.names.of_credential(provider, digest), count=500
            )
            if self.names.shared(k)
        ]
        message = {"origin": self._origin, "forget": True, "provider": provider, "hash": digest}
        pipe = client.pipeline(transaction=True)
        if names:
            pipe.delete(*names)
        pipe.publish(self.names.channel, json.dumps(message))
        await pipe.execute()

    async def _pull(self, client: Redis) -> None:
        """Merge every shared entry of a credential this machine holds; take the team's
        usage counts (of a namespace that may have started over: none kept from before)."""
        self._totals = {}
        async for raw_key in client.scan_iter(match=self.names.entries, count=500):
            key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
            parsed = self.names.parse(key)
            if parsed is not None and parsed[0] == USAGE:
                self._note_totals(key, await client.hmget(key, "requests", "failures", "lastUsed"))
                continue
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
            usage = doc.get("usage")
            if isinstance(usage, dict):
                for name, row in usage.items():
                    self._note_totals(name, row)
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
        if section == POSITION:
            await self._merge_position(provider, digest, doc)
            return
        cred = await self._local_credential(provider, digest)
        if cred is not None:
            await asyncio.to_thread(self.local.merge_remote, section, cred, doc)

    async def _merge_position(self, provider: str, digest: str, doc: dict[str, Any]) -> None:
        """The team's key of a pool, when this machine holds the same pool."""
        if self._salt is None:
            return
        everyone = await asyncio.to_thread(self.local.team_credentials)
        creds = [c for c in everyone if c.provider == provider]
        if self._pool_digest(provider, creds) != digest:
            return
        current = doc.get("current")
        cred = next((c for c in creds if self._digest(provider, c) == current), None)
        if cred is not None:
            await asyncio.to_thread(self.local.merge_position, cred, doc)

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
            if self._home is not None:  # the caller's loop: on_link may touch its state
                with contextlib.suppress(RuntimeError):  # it has closed: we are ending
                    self._home.call_soon_threadsafe(self._on_link, link)
        self._settled.set()


async def _close(thing: Any) -> None:
    # Closing a dead connection may fail in many ways: it is gone either way.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(thing.aclose(), CALL_TIMEOUT)
