"""Bounded bodies: compressed answers still stream, odd encodings fail clearly, and the
limits come from the environment like the timeouts.

The hostile cases (an endless line, gzip bombs) run over stdio with a measured memory
cap in tests/reliability/test_hostile_provider.py; these are the everyday ones, in
process through the engine.
"""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from sidecar import limits
from sidecar.engine import Engine
from sidecar.errors import UpstreamError
from sidecar.fake import FakeProvider, Reply, Text
from sidecar.providers import StreamRequest
from tests.conftest import engine_for

ANSWER = "Compressed streams are fine: every event is flushed as it is written."
REQUEST = StreamRequest(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=16)


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


def engine_with(home: Path, env: dict[str, str], key: str, **kwargs: object) -> Engine:
    engine = engine_for(home, env, max_cooldown_wait=0.0, **kwargs)
    engine.keypool.add_key("anthropic" if key.startswith("sk-ant") else "openai", key)
    return engine


@pytest.mark.parametrize("flavour", ["anthropic", "openai"])
async def test_a_gzip_compressed_stream_is_read_as_usual(
    flavour: str, home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    key = make_key("sk-ant-api03-" if flavour == "anthropic" else "sk-proj-")
    fake.script(key, [], default=Reply([Text(ANSWER)], chunk=5, gzip=True))
    env = {"ANTHROPIC_BASE_URL": fake.url, "OPENAI_BASE_URL": fake.url + "/v1"}
    engine = engine_with(home, env, key)
    try:
        outcome = await engine.stream(flavour, REQUEST)
    finally:
        await engine.aclose()
    assert outcome.message.content[0]["text"] == ANSWER
    assert fake.requests[0].headers["accept-encoding"] == "gzip, deflate"


def anthropic_sse() -> bytes:
    events = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "deflated"},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "message_stop"},
    ]
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


class Chunks(httpx.AsyncByteStream):
    """A body as it comes off the network: in small chunks."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), 7):
            yield self.data[start : start + 7]


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "encode", "outcome"),
    [
        ("deflate", zlib.compress, "deflated"),
        ("deflate", raw_deflate, "deflated"),  # no zlib header, as some servers send it
        ("gzip", lambda data: gzip.compress(data)[:-20] + b"garbage" * 8, "corrupt"),
        ("br", lambda data: data, "content-encoding 'br'"),
    ],
)
async def test_encodings_are_decoded_in_bounded_steps_or_refused(
    encoding: str,
    encode: Callable[[bytes], bytes],
    outcome: str,
    home: Path,
    make_key: Callable[..., str],
) -> None:
    calls = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        headers = {"content-type": "text/event-stream", "content-encoding": encoding}
        # A stream, not content=: httpx reads (and decodes) a bytes body at once.
        return httpx.Response(200, headers=headers, stream=Chunks(encode(anthropic_sse())))

    key = make_key()
    engine = engine_with(home, {}, key, transport=httpx.MockTransport(answer))
    try:
        result = await engine.stream("anthropic", REQUEST)
        text = result.message.content[0]["text"]
    except UpstreamError as exc:
        text = exc.message
    finally:
        await engine.aclose()
    assert outcome in text
    assert calls == 1  # a body that cannot be read is not asked for again


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("8M", 8 * 1024**2),
        ("65536", 65536),
        ("1 GiB", 1024**3),
        ("512k", 512 * 1024),
    ],
)
def test_limits_come_from_the_environment(raw: str, expected: int) -> None:
    got = limits.from_env({limits.EVENT_ENV: raw, limits.RESPONSE_ENV: raw})
    assert got.max_event == got.max_response == expected


@pytest.mark.parametrize("raw", ["0", "-1", "lots", "1k", "99G", "sk-ant-api03-pasted-here"])
def test_an_invalid_limit_falls_back_to_the_default_with_a_warning(
    raw: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        got = limits.from_env({limits.EVENT_ENV: raw})
    assert got == limits.DEFAULTS
    assert limits.EVENT_ENV in caplog.text
    assert raw not in caplog.text or len(raw) <= 12  # a pasted key is not logged whole
