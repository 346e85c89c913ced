"""A key the provider quotes back never reaches the client: wherever it sits in the
answer, however the provider cut its bytes into HTTP chunks."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import hypothesis
import pytest
from hypothesis import strategies as st

from sidecar.fake import Error, FakeProvider, Reply, Split
from sidecar.fingerprints import MIN_RUN
from sidecar.fingerprints import fingerprint as sidecar_fingerprint
from sidecar.gateway._scrub import Scrubber
from tests.gateway.conftest import Gateway

BODY = {
    "model": "claude-test-1",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hi"}],
}
CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}

ROUTES = {
    "anthropic": ("/anthropic/v1/messages", BODY, "sk-ant-api03-"),
    "openai": ("/openai/v1/chat/completions", CHAT, "sk-proj-"),
}


def post(gateway: Gateway, path: str, body: dict[str, object]) -> httpx.Response:
    with httpx.Client(timeout=10) as client:
        return client.post(f"{gateway.url}{path}", headers=gateway.headers(), json=body)


def pieces_of(key: str, text: str) -> list[str]:
    """Every run of MIN_RUN characters of the key's secret part found in ``text``."""
    body = key[len(sidecar_fingerprint(key).partition("…")[0]) :]
    runs = {body[i : i + MIN_RUN] for i in range(len(body) - MIN_RUN + 1)}
    return sorted(r for r in runs if r in text)


def assert_clean(key: str, text: str) -> None:
    # Booleans only: a failing assertion must not print the key it found.
    whole, pieces = key in text, len(pieces_of(key, text))
    assert not whole, "the key reached the client"
    assert pieces == 0, f"{pieces} runs of the key reached the client"


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
@pytest.mark.parametrize("split", [3, 7, 16, "random"])
def test_a_key_echoed_in_a_mid_stream_error_cut_into_small_chunks_does_not_leak(
    gateway: Gateway,
    fake: FakeProvider,
    make_key: Callable[..., str],
    provider: str,
    split: Split,
) -> None:
    """The chunks that carry the key need not say "error": a provider's bytes are cut
    anywhere (the fake's ``split``), so every chunk is looked at, across chunk ends."""
    path, body, prefix = ROUTES[provider]
    key = make_key(prefix)
    fake.script(
        key,
        [],
        default=Reply(
            "some words before the error",
            chunk=4,
            error_after=6,
            error_type="api_error",
            error_message="internal trouble with {key} today",
            echo_key=True,
            split=split,
            seed=7,
        ),
    )
    gateway.add_keys(provider, [key])
    resp = post(gateway, path, {**body, "stream": True})
    assert resp.status_code == 200
    assert "internal trouble with" in resp.text and "today" in resp.text
    assert_clean(key, resp.text)
    assert sidecar_fingerprint(key) in resp.text


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_a_key_echoed_in_a_streamed_event_that_is_no_error_does_not_leak(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str], provider: str
) -> None:
    """A host's own event shape, under a name other than "error" (a proxy's ``detail``)."""
    path, body, prefix = ROUTES[provider]
    key = make_key(prefix)
    stream = 'data: {"detail": "quota for {key} spent"}\n\n' + "data: [DONE]\n\n"
    fake.script(
        key,
        [],
        default=Error(status=200, content_type="text/event-stream", body=stream, echo_key=True),
    )
    gateway.add_keys(provider, [key])
    resp = post(gateway, path, {**body, "stream": True})
    assert "quota for" in resp.text
    assert_clean(key, resp.text)


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_a_key_echoed_in_a_whole_answer_does_not_leak(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str], provider: str
) -> None:
    """A 200 JSON answer quoting the key (under no "error" at all) is scrubbed too."""
    path, body, prefix = ROUTES[provider]
    key = make_key(prefix)
    fake.script(
        key,
        [],
        default=Error(
            status=200,
            content_type="application/json",
            body='{"note": "served by {key}"}',
            echo_key=True,
        ),
    )
    gateway.add_keys(provider, [key])
    resp = post(gateway, path, body)
    assert resp.status_code == 200
    assert resp.json() == {"note": f"served by {sidecar_fingerprint(key)}"}


def test_an_answer_without_the_key_passes_byte_for_byte_however_it_was_cut(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    """The scrubbing re-cuts chunks at line ends but never changes a byte."""
    key = make_key()
    text = "naïve café — ünïcödé " * 20  # multi-byte characters cut across chunks
    fake.script(key, [], default=Reply(text, split="random", seed=3))
    gateway.add_keys("anthropic", [key])
    resp = post(gateway, "/anthropic/v1/messages", {**BODY, "stream": True})
    deltas = re.findall(r'"text":"([^"]*)"', resp.text)
    assert "".join(deltas) == text
    assert resp.text.endswith('data: {"type":"message_stop"}\n\n')


_KEY_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(
    secret=st.text(_KEY_CHARS, min_size=MIN_RUN, max_size=160),
    data=st.data(),
)
def test_the_scrubber_catches_any_run_of_any_key_however_the_stream_is_cut(
    secret: str, data: st.DataObject
) -> None:
    """Keys of every make (all capitals, no capitals, digits only): the scrubber looks
    for a few anchors picked to be cheap to find, and a run of the key anywhere in the
    text, cut into chunks anywhere, must still be caught."""
    key = "sk-ant-api03-" + secret
    start = data.draw(st.integers(0, len(secret) - MIN_RUN))
    end = data.draw(st.integers(start + MIN_RUN, len(secret)))
    words = data.draw(st.text("abc \n", max_size=40))
    text = f'data: {{"text":"{words}{secret[start:end]}{words}"}}\n\n'.encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=4)))
    scrub = Scrubber(key)
    bounds = zip([0, *cuts], [*cuts, len(text)], strict=True)
    out = b"".join(scrub.feed(text[a:b]) for a, b in bounds)
    out += scrub.flush()
    assert_clean(key, out.decode())
    assert out.count(b"\n") == text.count(b"\n")  # only the piece was replaced
