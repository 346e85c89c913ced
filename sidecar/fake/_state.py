"""The fake's shared state: scripts per credential and the record of what happened.

Written by the server's event loop thread and read by test threads, so every access
goes through one lock.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from sidecar.fake._ratelimit import Overload, RateLimiter, RateLimits
from sidecar.fake._script import Script
from sidecar.fake._steps import Step

T = TypeVar("T")

# Headers that carry credentials: never recorded.
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "cookie"})


def fingerprint(secret: str) -> str:
    """``sk-ant-…a1b2``: a recognisable prefix (keys of 16+ characters) and the last four
    characters (keys of 8+), never enough of a short key to give it away."""
    prefix = ""
    if len(secret) >= 16:
        parts = secret.split("-")
        # "sk-", "sk-ant-", "sk-proj-": the vendor part, not the random part.
        for count in (2, 1):
            candidate = "-".join(parts[:count]) + "-"
            vendor = all(p.isalpha() for p in parts[:count])
            if len(parts) > count and vendor and len(candidate) <= 8:
                prefix = candidate
                break
    tail = secret[-4:] if len(secret) >= 8 else ""
    return f"{prefix}…{tail}"


class Event(NamedTuple):
    """Something the server saw outside a request/response pair, e.g.
    ``Event("connection_closed", 3, 5)``: the client hung up on request 3 after 5
    events had been written."""

    name: str
    request: int
    events_written: int


@dataclass(slots=True)
class RecordedRequest:
    no: int
    method: str
    path: str
    flavour: str | None
    model: str | None
    key: str | None
    """Fingerprint of the credential, never the credential."""
    headers: dict[str, str]
    """Lower-cased, credentials removed."""
    body: Any
    stream: bool
    connection: int = 0
    """Which client connection carried it (numbered from 0): shows keep-alive reuse."""
    step: str = ""
    """What answered: reply, error:<type>, drop, unknown_key, missing_key, invalid."""
    status: int | None = None
    """HTTP status sent; None when nothing was."""
    write_ns: list[int] = field(default_factory=list)
    """``time.perf_counter_ns()`` after each event was handed to the socket, when the
    fake was made with ``timestamps=True``."""
    query: str = ""
    """The query string as sent (``beta=true``), without the ``?``."""

    def to_json(self) -> dict[str, Any]:
        return {
            "no": self.no,
            "method": self.method,
            "path": self.path,
            "flavour": self.flavour,
            "model": self.model,
            "key": self.key,
            "headers": self.headers,
            "body": self.body,
            "stream": self.stream,
            "connection": self.connection,
            "query": self.query,
            "step": self.step,
            "status": self.status,
        }


class _KeyScript:
    __slots__ = ("default", "steps")

    def __init__(self, script: Script) -> None:
        self.steps: deque[Step] = deque(script.steps)
        self.default = script.default


class State:
    def __init__(
        self,
        scripts: Iterable[Script] = (),
        *,
        timestamps: bool = False,
        limits: Mapping[str | None, RateLimits] | None = None,
        overload: Overload | None = None,
    ) -> None:
        self.timestamps = timestamps
        self.ratelimit = RateLimiter(limits, overload)
        self._lock = threading.Condition(threading.Lock())
        self._generation = 0
        self._initial = {s.key: s for s in scripts}
        self._scripts = {key: _KeyScript(s) for key, s in self._initial.items()}
        self._secrets: set[str] = set(self._initial)
        self._requests: list[RecordedRequest] = []
        self._events: list[Event] = []

    # -- scripts --

    def set_script(self, script: Script) -> None:
        with self._lock:
            self._scripts[script.key] = _KeyScript(script)
            self._secrets.add(script.key)

    def add_secret(self, secret: str) -> None:
        """A credential the log must fingerprint although no script names it (a refresh token)."""
        with self._lock:
            self._secrets.add(secret)

    def reset(self) -> None:
        """Back to the scripts the fake started with; the record is cleared."""
        with self._lock:
            self._scripts = {key: _KeyScript(s) for key, s in self._initial.items()}
            self._requests.clear()
            self._events.clear()
            self._changed()
        self.ratelimit.reset()

    def knows(self, key: str) -> bool:
        with self._lock:
            return key in self._scripts

    def next_step(self, key: str) -> Step | None:
        """The step answering this request, consumed; None for an unknown key."""
        with self._lock:
            script = self._scripts.get(key)
            if script is None:
                return None
            return script.steps.popleft() if script.steps else script.default

    # -- record --

    def _changed(self) -> None:
        self._generation += 1
        self._lock.notify_all()

    def record_request(
        self,
        *,
        method: str,
        path: str,
        flavour: str | None,
        model: str | None,
        key: str | None,
        headers: Mapping[str, str],
        body: Any,
        stream: bool,
        connection: int,
        query: str = "",
    ) -> RecordedRequest:
        with self._lock:
            if key is not None:
                self._secrets.add(key)
            record = RecordedRequest(
                no=len(self._requests),
                method=method,
                path=path,
                flavour=flavour,
                model=model,
                key=fingerprint(key) if key is not None else None,
                headers={k: v for k, v in headers.items() if k not in CREDENTIAL_HEADERS},
                body=body,
                stream=stream,
                connection=connection,
                query=query,
            )
            self._requests.append(record)
            self._changed()
            return record

    def finish(self, record: RecordedRequest, step: str, status: int | None) -> None:
        with self._lock:
            record.step = step
            record.status = status
            self._changed()

    def record_event(self, name: str, request: int, events_written: int) -> None:
        with self._lock:
            self._events.append(Event(name, request, events_written))
            self._changed()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def log(self) -> dict[str, Any]:
        """The record as JSON-ready data, every known credential replaced by its
        fingerprint wherever it occurs (a test may well echo a key in a message)."""
        with self._lock:
            data = {
                "requests": [r.to_json() for r in self._requests],
                "events": [e._asdict() for e in self._events],
            }
            secrets = sorted(self._secrets, key=len, reverse=True)
        replacements = [(s, fingerprint(s)) for s in secrets if s]
        return _scrub(data, replacements)  # type: ignore[no-any-return]

    # -- waiting --

    def wait_for(self, predicate: Callable[[], T], timeout: float) -> T:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                seen = self._generation
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout} s")
            with self._lock:
                if self._generation == seen:
                    # Bounded wait: the predicate may look at more than the record.
                    self._lock.wait(min(remaining, 0.05))

    async def wait_for_async(self, predicate: Callable[[], T], timeout: float) -> T:
        deadline = time.monotonic() + timeout
        while not (result := predicate()):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            await asyncio.sleep(0.01)
        return result


def _scrub(value: Any, replacements: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        for secret, fp in replacements:
            if secret in value:
                value = value.replace(secret, fp)
        return value
    if isinstance(value, dict):
        return {_scrub(k, replacements): _scrub(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, replacements) for v in value]
    return value
