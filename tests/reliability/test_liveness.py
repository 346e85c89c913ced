"""Clients and providers that stall the sidecar on purpose: it must keep serving.

Raw stdio clients against :mod:`sidecar.fake`. Nothing here asserts on elapsed time:
work is bounded by counts (requests the fake saw, answers with their codes) and by
the order of answers; waits have generous bounds that only keep a hang from hanging
the suite.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.engine import MAX_CONNECTIONS
from sidecar.fake import FakeProvider, Reply, Text
from tests.reliability.support import RawServer, dumps, error_code, frame

HELD = 3600.0  # the fake holds each connection open, before any answer, this long


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


def stream(msg_id: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": msg_id,
        "method": "sidecar/stream",
        "params": {
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "maxTokens": 8,
            "streamId": msg_id,
            "messages": [{"role": "user", "content": "hi"}],
        },
    }


def responses(server: RawServer, ids: set[str], timeout: float = 60.0) -> list[dict[str, Any]]:
    """Every response until one has come for each of ``ids``, in arrival order."""
    left = set(ids)
    replies: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while left:
        message = server.next_message(max(deadline - time.monotonic(), 0.0))
        assert message is not None, f"no answer for {len(left)} requests, e.g. {sorted(left)[:3]}"
        if "method" not in message:
            replies.append(message)
            left.discard(message.get("id"))
    return replies


def cancel(msg_id: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": msg_id}}


def test_a_cancel_storm_answers_every_request_and_leaves_queued_ones_off_the_network(
    home: Path, fake: FakeProvider, make_key: Any
) -> None:
    """More streams than connections to a provider that never answers, then a cancel
    for each, in the order they were sent, in one write.

    The first MAX_CONNECTIONS hold a connection; the rest wait for one. Each answers
    -32800 exactly once; a status request sent after the cancels is answered; and the
    waiting ones never reach the provider, although the cancels of the first ones free
    connections before the later cancels are read (on the way there, httpx's pool cost
    grew with queued × connections per cancel: seconds of stalled loop per hundred)."""
    count = MAX_CONNECTIONS + 50
    key = make_key()
    fake.script(key, [], default=Reply([Text("never")], stall=HELD))
    with RawServer(home, env={"ANTHROPIC_BASE_URL": fake.url}) as server:
        server.initialize()
        assert server.request("sidecar/keyAdd", {"provider": "anthropic", "key": key})["result"]
        ids = [f"s{i}" for i in range(count)]
        server.write(b"".join(frame(dumps(stream(i))) for i in ids))
        fake.wait_for(lambda: len(fake.requests) >= MAX_CONNECTIONS, timeout=60)

        status = {"jsonrpc": "2.0", "id": "status", "method": "sidecar/status", "params": {}}
        server.write(b"".join(frame(dumps(m)) for m in [*map(cancel, ids), status]))
        replies = responses(server, {*ids, "status"})
        assert Counter(m["id"] for m in replies) == Counter([*ids, "status"])
        codes = Counter(error_code(m) for m in replies if m["id"] != "status")
        assert codes == {-32800: count}, codes
        assert "providers" in next(m for m in replies if m["id"] == "status")["result"]
        # Every held connection was closed, and none was opened for a waiting stream.
        fake.wait_for(
            lambda: sum(e.name == "connection_closed" for e in fake.events) >= MAX_CONNECTIONS,
            timeout=30,
        )
        assert len(fake.requests) == MAX_CONNECTIONS
        server.probe()


class StopsReading(RawServer):
    """A raw client whose reading can be stopped (after at most one more chunk)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.reading = threading.Event()
        self.reading.set()
        super().__init__(*args, **kwargs)

    def _read_chunk(self, fd: int) -> bytes:
        self.reading.wait()
        return super()._read_chunk(fd)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads /proc")
def test_a_client_that_stops_reading_does_not_freeze_the_sidecar(
    home: Path, fake: FakeProvider, make_key: Any
) -> None:
    """The client stops reading stdout while a long answer streams in.

    The sidecar's writes must not block its event loop: its timeouts keep running (the
    total timeout cuts the attempt, and the fake sees the connection closed while the
    client is still not reading), its buffer stays bounded (a measured cap on its peak
    RSS, far below the answer's size), and once the client reads again it gets the
    error for the cut stream and a status answer."""
    key = make_key()
    answer = "x" * (32 * 1024 * 1024)  # a 32 MB answer, streamed as fast as loopback goes
    fake.script(key, [], default=Reply([Text(answer)], chunk=1 << 16, split=1 << 16))
    env = {"ANTHROPIC_BASE_URL": fake.url, "LLM_SIDECAR_TOTAL_TIMEOUT": "6"}
    with StopsReading(home, env=env) as server:
        server.initialize()
        assert server.request("sidecar/keyAdd", {"provider": "anthropic", "key": key})["result"]
        server.reading.clear()
        server.send(stream("long"))

        # While nobody reads: the attempt is cut at the total timeout, upstream closed.
        fake.wait_for(lambda: any(e.name == "connection_closed" for e in fake.events), 30)
        peak = peak_rss_mb(server.proc.pid)
        [closed] = fake.events
        assert closed.events_written > 0  # the answer was streaming when the client stopped

        server.reading.set()
        [reply] = [m for m in responses(server, {"long"}) if m["id"] == "long"]
        assert error_code(reply) == -32004 and reply["error"]["data"]["type"] == "total_timeout"
        server.probe()
    assert peak < 100, f"the sidecar peaked at {peak:.0f} MB for a client that did not read"
