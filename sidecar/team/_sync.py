"""The link to a team's Redis: push what this machine saw, merge what others saw.

Unlike :mod:`sidecar.team._names` (naming) and the key pool (the only writer of the
local state) this owns the connection. The local files stay the working state: every
request decides on them alone, so no request ever waits for Redis. An outcome that
changes a shared section is queued here and written by a background task (one
script per entry: keep the later end, then publish); entries published by other
machines arrive by pub/sub and are handed to the key pool to merge. Redis lost:
the status says so once, the task reconnects with a capped backoff, and on
reconnecting both sides are merged (a cooldown known on either side is kept until
the later end).
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
from sidecar.team._names import SECTIONS, Names, credential_hash

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from sidecar.credentials import Credential

__all__ = ["Link", "LocalState", "TeamSync"]

log = logging.getLogger(__name__)

Link = Literal["connecting", "online", "offline"]
_Item = tuple[str, str, "Credential", dict[str, Any]]
FORGET = "forget"  # a queue item's section: the user reset the credential here

# Every call is bounded: a stalled server must not hold an outcome back for long.
CALL_TIMEOUT = 1.0
BACKOFF_FIRST, BACKOFF_CAP = 0.5, 30.0
# A rejection is kept this long; cooldowns live exactly as long as they last.
REJECTED_TTL = 30 * 86400
# How often a quiet link checks that the server and the namespace are still there.
CHECK_EVERY = 5.0
# Outcomes waiting for the server; more are dropped (a reconnect pushes every entry).
QUEUE_SIZE = 1000
# What a teammate's entry may ask at most: a damaged or hostile entry cannot park a
# key for longer than this.
MAX_REMOTE_COOLDOWN = 7 * 86400

# KEYS[1]: the entry. ARGV: entry JSON, its end (epoch ms, 0: none), now (epoch ms),
# TTL (ms) when it has no end, channel, message. A cooldown is only ever extended:
# an entry ending no later than the stored one changes nothing and is not published.
_PUT = """
local cur = redis.call('GET', KEYS[1])
local new_end = tonumber(ARGV[2])
if cur then
  local ok, old = pcall(cjson.decode, cur)
  if ok and type(old) == 'table' then
    local old_end = tonumber(old['until']) or 0
    if new_end == 0 or old_end * 1000 >= new_end then return 0 end
  end
end
local ttl = tonumber(ARGV[4])
if new_end > 0 then ttl = new_end - tonumber(ARGV[3]) end
if ttl <= 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', math.floor(ttl))
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
"""


class LocalState(Protocol):
    """What the sync needs of the key pool (implemented by KeyPool)."""

    def team_credentials(self) -> list[Credential]:
        """Every credential a team can share (keys and static tokens, not logins)."""

    def team_entries(self) -> list[tuple[str, str, Credential, dict[str, Any]]]:
        """(provider, section, credential, entry) of every shared entry held locally."""

    def merge_remote(self, section: str, cred: Credential, entry: dict[str, Any]) -> bool:
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
        # (provider, section, credential, entry); section FORGET: the user reset it here.
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(QUEUE_SIZE)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._warned = False

    # -- called by the key pool, from any thread -------------------------------------

    def publish(self, provider: str, section: str, cred: Credential, entry: dict[str, Any]) -> None:
        """Queue one changed entry for the team; never blocks, never raises."""
        if self._loop is None or cred.kind == "oauth" or section not in SECTIONS:
            return
        item: _Item = (provider, section, cred, dict(entry))
        with contextlib.suppress(RuntimeError):  # the loop has closed: we are shutting down
            self._loop.call_soon_threadsafe(self._enqueue, item)

    def forget(self, provider: str, creds: list[Credential]) -> None:
        """The user reset ``provider`` here (``keyReset``): the team forgets what it saw too."""
        for cred in creds:
            if self._loop is not None and cred.kind != "oauth":
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self._enqueue, (provider, FORGET, cred, {}))

    def _enqueue(self, item: _Item) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # offline a long time: see QUEUE_SIZE
            self._queue.put_nowait(item)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name="team-state")

    async def aclose(self) -> None:
        if self._task is not None:
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
                self._set_link("offline", exc)
            finally:
                await _close(client)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_CAP)
            if self.link == "online":  # the session ran a while: start small again
                backoff = BACKOFF_FIRST

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
            for item in await asyncio.to_thread(self.local.team_entries):
                await self._put(put, *item)
            self._set_link("online")
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
                        provider, section, cred, entry = get.result()
                        if section == FORGET:
                            await self._forget(client, provider, cred)
                        else:
                            await self._put(put, provider, section, cred, entry)
                        get = None
                    elif await client.get(self.names.salt) != salt:
                        # Quiet for a while: make sure the server is still there, and
                        # still the same namespace (a flush drops the salt; every
                        # machine then starts over with a new one).
                        raise OSError("the namespace was reset")
            finally:
                listen.cancel()
                if get is not None:
                    get.cancel()
        finally:
            await _close(pubsub)

    # -- the two directions ------------------------------------------------------------

    async def _put(
        self, put: Any, provider: str, section: str, cred: Credential, entry: dict[str, Any]
    ) -> None:
        assert self._salt is not None
        digest = credential_hash(self._salt, provider, cred.secret)
        now = time.time()
        until = entry.get("until")
        end_ms = int(until * 1000) if isinstance(until, int | float) and until > now else 0
        if section == "cooldowns" and not end_ms:
            return  # an ended cooldown: nothing to share
        message = json.dumps(
            {
                "origin": self._origin,
                "section": section,
                "provider": provider,
                "hash": digest,
                "entry": entry,
            }
        )
        await put(
            keys=[self.names.entry(section, provider, digest)],
            args=[
                json.dumps(entry),
                end_ms,
                int(now * 1000),
                REJECTED_TTL * 1000,
                self.names.channel,
                message,
            ],
        )

    async def _forget(self, client: Redis, provider: str, cred: Credential) -> None:
        assert self._salt is not None
        digest = credential_hash(self._salt, provider, cred.secret)
        pipe = client.pipeline(transaction=True)
        for section in SECTIONS:
            pipe.delete(self.names.entry(section, provider, digest))
        message = {"origin": self._origin, "forget": True, "provider": provider, "hash": digest}
        pipe.publish(self.names.channel, json.dumps(message))
        await pipe.execute()

    async def _pull(self, client: Redis) -> None:
        """Merge every shared entry of a credential this machine holds."""
        for section in SECTIONS:
            async for raw_key in client.scan_iter(match=self.names.pattern(section), count=500):
                key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
                parsed = self.names.parse(key)
                raw = await client.get(key)
                if parsed is None or raw is None:
                    continue
                await self._merge(parsed[0], parsed[1], parsed[2], raw)

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
        if section not in SECTIONS or self._salt is None:
            return
        try:
            entry = json.loads(raw)
        except ValueError:
            return
        if not isinstance(entry, dict):
            return
        if section == "cooldowns":
            until = entry.get("until")
            if not isinstance(until, int | float):
                return
            entry["until"] = min(float(until), time.time() + MAX_REMOTE_COOLDOWN)
        cred = await self._local_credential(provider, digest)
        if cred is not None:
            await asyncio.to_thread(self.local.merge_remote, section, cred, entry)

    async def _local_credential(self, provider: str, digest: str) -> Credential | None:
        """This machine's credential a team's hash names; None when we do not hold it."""
        salt = self._salt
        if salt is None:
            return None
        for cred in await asyncio.to_thread(self.local.team_credentials):
            if cred.provider == provider and credential_hash(salt, provider, cred.secret) == digest:
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
