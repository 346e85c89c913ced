"""The fake's rate-limit headers, Date, clock skew, request encodings and Mistral-style
content parts."""

from __future__ import annotations

import email.utils
import gzip
import json
import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
from fake_support import KEY, OPENAI_KEY, anthropic_headers, messages_body

from sidecar.fake import (
    Error,
    FakeProvider,
    GoogleQuotaExceeded,
    Reply,
    Text,
    Thinking,
    Window,
    parse_step,
)

CHAT = {"model": "magistral-medium-latest", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


def chat(http: httpx.Client, fake: FakeProvider, stream: bool = False) -> httpx.Response:
    return http.post(
        fake.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {OPENAI_KEY}"},
        json={**CHAT, "stream": stream},
    )


def test_openai_windows_are_reported_in_openais_header_names(
    fake: FakeProvider, http: httpx.Client
) -> None:
    tokens = Window(remaining=149984, reset_in=360, limit=150000)
    fake.script(OPENAI_KEY, [Error("rate_limit_error", reset_in=1, windows={"tokens": tokens})])
    headers = chat(http, fake).headers
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "1s"
    assert headers["x-ratelimit-limit-tokens"] == "150000"
    assert headers["x-ratelimit-remaining-tokens"] == "149984"
    assert headers["x-ratelimit-reset-tokens"] == "6m0s"
    date = email.utils.parsedate_to_datetime(headers["date"]).timestamp()
    assert abs(date - time.time()) < 120  # the fake's own clock: no skew asked for


def test_anthropic_resets_and_date_follow_the_skewed_clock(
    fake: FakeProvider, http: httpx.Client
) -> None:
    step = parse_step(
        {
            "kind": "error",
            "type": "rate_limit_error",
            "reset_in": 30,
            "windows": {"tokens": {"remaining": 5000, "reset_in": 60}},
            "clock_skew": -7200,
        }
    )
    fake.script(KEY, [step])
    response = http.post(
        fake.url + "/v1/messages", headers=anthropic_headers(), json=messages_body()
    )
    date = email.utils.parsedate_to_datetime(response.headers["date"]).timestamp()
    reset = datetime.fromisoformat(response.headers["anthropic-ratelimit-requests-reset"])
    assert 29 <= reset.timestamp() - date <= 32
    assert response.headers["anthropic-ratelimit-tokens-remaining"] == "5000"
    assert abs(date + 7200 - time.time()) < 120


def test_a_request_body_is_read_as_its_content_encoding_says(
    fake: FakeProvider, http: httpx.Client
) -> None:
    plain = json.dumps(messages_body(stream=False)).encode()
    url, headers = fake.url + "/v1/messages", {**anthropic_headers(), "content-encoding": "gzip"}
    sent = http.post(url, headers=headers, content=gzip.compress(plain))
    assert sent.status_code == 200
    assert fake.requests[-1].body == messages_body(stream=False)
    # Plain bytes under a gzip header (a proxy that forgot it inflated them): refused.
    lying = http.post(url, headers=headers, content=plain)
    assert lying.status_code == 400
    assert len(fake.requests) == 1


def test_content_parts_are_mistrals_shape(fake: FakeProvider, http: httpx.Client) -> None:
    reply = Reply([Thinking("Hm."), Text("Hi!")], content_parts=True, chunk=10)
    fake.script(OPENAI_KEY, [reply, reply])
    with http.stream(
        "POST",
        fake.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {OPENAI_KEY}"},
        json={**CHAT, "stream": True},
    ) as response:
        lines = [line[6:] for line in response.iter_lines() if line.startswith("data: {")]
    deltas = [json.loads(line)["choices"][0]["delta"] for line in lines if '"choices":[{' in line]
    assert {
        "content": [{"type": "thinking", "thinking": [{"type": "text", "text": "Hm."}]}]
    } in deltas
    assert {"content": [{"type": "text", "text": "Hi!"}]} in deltas
    whole = chat(http, fake).json()["choices"][0]["message"]["content"]
    assert whole == [
        {"type": "thinking", "thinking": [{"type": "text", "text": "Hm."}]},
        {"type": "text", "text": "Hi!"},
    ]


def test_google_quota_exceeded_is_geminis_body(fake: FakeProvider, http: httpx.Client) -> None:
    fake.script(OPENAI_KEY, [GoogleQuotaExceeded(retry_delay=20)])
    response = chat(http, fake)
    assert response.status_code == 429
    assert not [h for h in response.headers if h.startswith(("retry-after", "x-ratelimit"))]
    (error,) = response.json()
    assert error["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "20s"} in error[
        "error"
    ]["details"]


@pytest.mark.parametrize(
    "step",
    [
        {"kind": "error", "windows": {"tokens": {"remaining": -1, "reset_in": 1}}},
        {"kind": "error", "windows": {"bad name!": {"remaining": 1, "reset_in": 1}}},
        {"kind": "error", "windows": {"tokens": {"reset_in": 1}}},
        {"kind": "error", "windows": ["tokens"]},
        {"kind": "error", "clock_skew": "soon"},
        {"kind": "reply", "content_parts": "yes"},
    ],
)
def test_bad_new_fields_are_clear_errors(step: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"window|clock_skew|content_parts|remaining"):
        parse_step(step)


def test_a_head_request_is_answered_without_a_body(fake: FakeProvider, http: httpx.Client) -> None:
    # HTTP has no body after a HEAD answer: bytes there would be read as the next
    # answer on the same connection (a gateway's pooled upstream connection broke on it).
    head = http.head(fake.url + "/v1/models", headers={"authorization": f"Bearer {OPENAI_KEY}"})
    assert head.content == b""
    models = http.get(fake.url + "/v1/models", headers={"authorization": f"Bearer {OPENAI_KEY}"})
    assert models.status_code == 200, models.text
    assert models.json()["object"] == "list"
