"""Transport behaviour: byte-level splits, stalls, trickles, drops and clients that hang up."""

from __future__ import annotations

import json
import time
from itertools import pairwise

import httpx
import pytest
from fake_support import KEY, RawClient, anthropic_headers, messages_body
from httpx_sse import connect_sse

from sidecar.fake import Drop, Error, FakeProvider, Reply, Text

UNICODE = "Grüße 🎉🚀 東京 漢字かな 한국어 " * 8


def raw_stream(fake: FakeProvider, timeout: float = 5.0) -> tuple[RawClient, float]:
    client = RawClient(fake.url, timeout=timeout)
    client.send("POST", "/v1/messages", anthropic_headers(), messages_body())
    return client, time.monotonic()


def text_of(sse: list[tuple[str | None, str]]) -> str:
    out = []
    for event, data in sse:
        if event == "content_block_delta":
            delta = json.loads(data)["delta"]
            out.append(delta.get("text", ""))
    return "".join(out)


def cuts_inside_characters(chunks: list[bytes]) -> int:
    """How many chunks cannot be decoded on their own: cut inside a UTF-8 character."""
    bad = 0
    for piece in chunks:
        try:
            piece.decode()
        except UnicodeDecodeError:
            bad += 1
    return bad


def test_without_split_each_chunk_is_one_event(fake: FakeProvider) -> None:
    # The single-write fast path, then the event-by-event path (a stall forces it).
    fake.script(KEY, [Reply([Text(UNICODE)]), Reply([Text(UNICODE)], stall=0.01, stall_after=2)])
    with RawClient(fake.url) as client:
        for _ in range(2):
            response = client.request("POST", "/v1/messages", anthropic_headers(), messages_body())
            assert response.complete
            assert all(c.endswith(b"\n\n") and c.count(b"\n\n") == 1 for c in response.chunks)
            assert text_of(response.sse()) == UNICODE


def test_fixed_split_cuts_inside_utf8_and_still_decodes(fake: FakeProvider) -> None:
    fake.script(KEY, [Reply([Text(UNICODE)], split=5)])
    with RawClient(fake.url) as client:
        response = client.request("POST", "/v1/messages", anthropic_headers(), messages_body())
    assert response.complete
    assert {len(c) for c in response.chunks[:-1]} == {5}
    assert cuts_inside_characters(response.chunks) > 0
    assert text_of(response.sse()) == UNICODE
    assert response.sse()[-1] == ("message_stop", '{"type":"message_stop"}')


def test_random_split_is_seeded_and_list_split_cycles(fake: FakeProvider) -> None:
    fake.script(
        KEY,
        [
            Reply([Text(UNICODE)], split="random", seed=7),
            Reply([Text(UNICODE)], split="random", seed=7),
            Reply([Text(UNICODE)], split="random", seed=8),
            Reply([Text(UNICODE)], split=[1, 2, 3]),
        ],
    )
    with RawClient(fake.url) as client:
        got = [
            client.request("POST", "/v1/messages", anthropic_headers(), messages_body())
            for _ in range(4)
        ]
    sizes = [[len(c) for c in r.chunks] for r in got]
    assert sizes[0] == sizes[1] != sizes[2]
    assert len(set(sizes[0])) > 5 and max(sizes[0]) <= 64
    assert sizes[3][:7] == [1, 2, 3, 1, 2, 3, 1]
    # The message id differs per request, so compare the text, not the bytes.
    assert all(text_of(r.sse()) == UNICODE for r in got)


def test_stall_before_first_byte(fake: FakeProvider) -> None:
    fake.script(KEY, [Reply(stall=0.4), Error("api_error", stall=0.3)])
    with RawClient(fake.url) as client:
        stalled = client.request("POST", "/v1/messages", anthropic_headers(), messages_body())
        error = client.request("POST", "/v1/messages", anthropic_headers(), messages_body())
    assert stalled.first_byte_after is not None and stalled.first_byte_after >= 0.35
    assert stalled.complete and stalled.status == 200
    assert error.first_byte_after is not None and error.first_byte_after >= 0.25
    assert error.status == 500


def test_stall_after_k_events_and_trickle(fake: FakeProvider) -> None:
    fake.script(
        KEY,
        [
            Reply([Text("a b c d e f")], chunk=2, stall=0.4, stall_after=3),
            Reply([Text("a b c d e f")], chunk=2, interval=0.03),
        ],
    )
    for expect_gap in (True, False):
        arrivals: list[float] = []
        with (
            httpx.Client(timeout=5) as http,
            connect_sse(
                http,
                "POST",
                fake.url + "/v1/messages",
                headers=anthropic_headers(),
                json=messages_body(),
            ) as events,
        ):
            started = time.monotonic()
            for _ in events.iter_sse():
                arrivals.append(time.monotonic() - started)
        gaps = [b - a for a, b in pairwise(arrivals)]
        # Only lower bounds: a loaded machine may delay any read, never hasten one.
        if expect_gap:
            assert len(arrivals) == 12
            assert gaps[2] >= 0.35  # three events, then the stall
        else:
            assert len(arrivals) == 12
            assert arrivals[-1] - arrivals[0] >= 11 * 0.03 * 0.9  # a steady trickle


def test_drop_after_k_events(fake: FakeProvider) -> None:
    fake.script(KEY, [Reply([Text("one two three four")], chunk=3, drop_after=4, split=7)])
    with RawClient(fake.url) as client:
        response = client.request("POST", "/v1/messages", anthropic_headers(), messages_body())
    assert response.status == 200 and not response.complete
    # Every byte of the first four events arrived (split or not), then nothing.
    assert [e for e, _ in response.sse()] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
    ]
    fake.wait_for(lambda: fake.events, timeout=2)
    assert fake.events == [("dropped", 0, 4)]


def test_drop_is_seen_by_httpx_as_an_incomplete_body(fake: FakeProvider) -> None:
    fake.script(KEY, [Reply(drop_after=3), Drop()])
    with (
        httpx.Client(timeout=5) as http,
        pytest.raises(httpx.RemoteProtocolError),
        connect_sse(
            http,
            "POST",
            fake.url + "/v1/messages",
            headers=anthropic_headers(),
            json=messages_body(),
        ) as events,
    ):
        list(events.iter_sse())
    with pytest.raises(httpx.RemoteProtocolError, match="without sending"):
        httpx.post(
            fake.url + "/v1/messages", headers=anthropic_headers(), json=messages_body(), timeout=5
        )
    assert [r.step for r in fake.requests] == ["reply", "drop"]


@pytest.mark.parametrize("where", ["trickle", "stall", "before_first_byte"])
def test_client_hanging_up_is_noticed_within_a_second(fake: FakeProvider, where: str) -> None:
    long_text = Text("word " * 500)
    reply = {
        "trickle": Reply([long_text], chunk=5, interval=0.05),
        "stall": Reply([long_text], stall=30, stall_after=3),
        "before_first_byte": Reply([long_text], stall=30),
    }[where]
    fake.script(KEY, [reply])
    client, _ = raw_stream(fake)
    if where != "before_first_byte":
        client.sock.settimeout(5)
        while client.buf.count(b"\n\n") < 3:
            assert client._fill()
    fake.wait_for(lambda: fake.requests, timeout=2)
    client.close()
    event = fake.wait_for(
        lambda: [e for e in fake.events if e.name == "connection_closed"], timeout=2
    )[0]
    assert event.request == 0
    if where == "stall":
        assert event.events_written == 3
    elif where == "before_first_byte":
        assert event.events_written == 0
    else:
        assert 3 <= event.events_written < 100
    # The fake keeps serving.
    with RawClient(fake.url) as other:
        assert other.request("POST", "/v1/messages", anthropic_headers(), messages_body()).complete


def test_stop_ends_stalled_connections(fake: FakeProvider) -> None:
    fake.script(KEY, [Reply(stall=30)])
    client, _ = raw_stream(fake)
    fake.wait_for(lambda: fake.requests, timeout=2)
    fake.stop()  # returns although the reply is stalled for 30 s: the pytest timeout guards it
    assert client.sock.recv(10) == b""  # closed by the fake, not left hanging
    client.close()


def test_many_deltas_and_timestamps() -> None:
    with FakeProvider(keys=[KEY], timestamps=True) as fake:
        fake.script(KEY, [Reply([Text("x" * 20_000)], chunk=1)])
        with RawClient(fake.url) as client:
            response = client.request("POST", "/v1/messages", anthropic_headers(), messages_body())
        sse = response.sse()
        deltas = [e for e, _ in sse if e == "content_block_delta"]
        assert len(deltas) == 20_000
        assert text_of(sse) == "x" * 20_000
        stamps = fake.requests[0].write_ns
        assert len(stamps) == len(sse)
        assert stamps == sorted(stamps)


def test_a_paced_events_timestamp_is_when_it_was_written() -> None:
    """With ``interval``, the pause comes before a write: each event is stamped when it
    is written, not one interval later (the benchmarks' latency figures rely on it).
    Checked by order, not by a duration: each stamp lies nearer the arrival of its own
    event at the client than that of the next one, as a stamp taken after the pause that
    precedes the next write would not."""
    with FakeProvider(keys=[KEY], timestamps=True) as fake:
        fake.script(KEY, [Reply([Text("abc")], chunk=1, interval=0.3)])
        client = RawClient(fake.url)
        with client:
            client.send("POST", "/v1/messages", anthropic_headers(), messages_body())
            arrivals: list[int] = []  # when the start of each event reached the client
            seen = 0
            while len(arrivals) < 4 and client._fill():
                now = time.perf_counter_ns()
                count = bytes(client.buf).count(b"event: ")
                arrivals += [now] * (count - seen)
                seen = count
        stamps = fake.requests[0].write_ns
    assert len(arrivals) >= 4
    for stamp, (arrived, next_arrived) in zip(stamps, pairwise(arrivals[:4]), strict=False):
        assert stamp < (arrived + next_arrived) / 2
    gaps = [(b - a) / 1e9 for a, b in pairwise(stamps)]
    assert all(gap >= 0.15 for gap in gaps)


def test_pings_are_sprinkled_in(fake: FakeProvider) -> None:
    fake.script(KEY, [Reply([Text("abcdefghij" * 3)], chunk=1, ping_every=10)])
    with RawClient(fake.url) as client:
        sse = client.request("POST", "/v1/messages", anthropic_headers(), messages_body()).sse()
    names = [e for e, _ in sse]
    assert names.count("ping") == 4  # after message_start, then after deltas 10, 20, 30
    assert names[1] == "ping"
