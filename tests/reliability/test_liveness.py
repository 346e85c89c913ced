"""Clients and providers that stall the sidecar on purpose: it must keep serving.

Raw stdio clients against :mod:`sidecar.fake`. Nothing here asserts on elapsed time:
work is bounded by counts (requests the fake saw, answers with their codes) and by
the order of answers; waits have generous bounds that only keep a hang from hanging
the suite.
"""

from __future__ import annotations

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
