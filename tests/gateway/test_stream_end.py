"""What the client gets when the upstream breaks off mid-stream: every byte that came
before the break, then a body that is visibly incomplete (never a clean end)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from sidecar.fake import FakeProvider, Reply
from tests.gateway.conftest import Gateway

BODY = {
    "model": "claude-test-1",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hi"}],
    "stream": True,
}


@pytest.mark.parametrize("drop_after", [6, 12])
def test_the_bytes_before_an_upstream_break_reach_the_client(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str], drop_after: int
) -> None:
    key = make_key()
    words = " ".join(f"w{i:02d}" for i in range(40))
    fake.script(key, [], default=Reply(words, chunk=4, ping_every=0, drop_after=drop_after))
    gateway.add_keys("anthropic", [key])
    got = bytearray()
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST", f"{gateway.url}/anthropic/v1/messages", headers=gateway.headers(), json=BODY
        ) as resp,
    ):
        assert resp.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):  # incomplete: not a clean end
            for chunk in resp.iter_raw():
                got += chunk
    # message_start, content_block_start, then text deltas: every event the fake wrote.
    events = got.count(b"\n\n")
    assert events == drop_after, bytes(got[-300:])
    assert b"message_stop" not in got
