"""The fake's hostile modes: keys echoed back, endless lines and events, gzip bombs.

Read here with a plain socket client and zlib, never more than a few MiB of them: what a
well-behaved client makes of them is tests/reliability/test_hostile_provider.py.
"""

from __future__ import annotations

import json
import zlib

import httpx
import pytest
from fake_support import KEY, OPENAI_KEY, anthropic_headers, messages_body

from sidecar.fake import Error, FakeProvider, Reply, Text, parse_step


def test_an_error_can_echo_the_request_key(fake: FakeProvider) -> None:
    fake.script(KEY, [Error("authentication_error", "bad key {key}!", echo_key=True)])
    response = httpx.post(
        fake.url + "/v1/messages", headers=anthropic_headers(), json=messages_body(stream=False)
    )
    assert response.status_code == 401
    assert response.json()["error"]["message"] == f"bad key {KEY}!"
    assert KEY not in json.dumps(fake.log())  # the fake's own log still fingerprints it


def test_an_error_event_can_echo_the_request_key(fake: FakeProvider) -> None:
    step = Reply([Text("hi")], error_after=2, error_message="no {key}", echo_key=True)
    fake.script(OPENAI_KEY, [step])
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    response = httpx.post(
        fake.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {OPENAI_KEY}"},
        json=body,
    )
    assert f"no {OPENAI_KEY}" in response.text


def read_raw(fake: FakeProvider, step: Reply, limit: int) -> tuple[httpx.Headers, bytes]:
    """The first ``limit`` bytes of the body as sent (still compressed), then hang up."""
    fake.script(KEY, [step])
    with (
        httpx.Client() as client,
        client.stream(
            "POST", fake.url + "/v1/messages", headers=anthropic_headers(), json=messages_body()
        ) as response,
    ):
        data = b""
        for chunk in response.iter_raw():
            data += chunk
            if len(data) >= limit:
                break
    return response.headers, data


def test_an_endless_line_never_ends(fake: FakeProvider) -> None:
    _, data = read_raw(fake, Reply([Text("hi")], endless_after=2), 1 << 20)
    head, _, line = data.partition(b'data: {"type":"content_block_delta"')
    assert head.count(b"\n\n") == 2  # two whole events first
    assert len(line) > 900_000 and b"\n" not in line


@pytest.mark.parametrize(("mode", "newlines"), [("line", False), ("events", True)])
def test_a_gzip_bomb_expands_hundreds_of_times(
    fake: FakeProvider, mode: str, newlines: bool
) -> None:
    step = parse_step({"kind": "reply", "endless_after": 1, "endless": mode, "gzip": True})
    headers, data = read_raw(fake, step, 8 * 1024)
    assert headers["content-encoding"] == "gzip"
    inflated = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(data, 64 << 20)
    assert len(inflated) > 2 * 1024**2  # from 8 KiB
    assert inflated.startswith(b"event: message_start\n")
    assert (inflated[-1000:].count(b"\n") > 0) is newlines
