"""The gateway's edges over raw HTTP: token, Host, body cap, routes, disconnects, secrets."""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import re
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from sidecar.fake import (
    Drop,
    Error,
    FakeProvider,
    InvalidKey,
    RateLimited,
    Reply,
    Usage,
    fingerprint,
)
from sidecar.fingerprints import fingerprint as sidecar_fingerprint
from tests.conftest import leaked
from tests.gateway.conftest import Gateway

BODY = {
    "model": "claude-test-1",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hi"}],
}


def post(
    gateway: Gateway, path: str, headers: dict[str, str] | None = None, **kw: object
) -> httpx.Response:
    with httpx.Client(timeout=10) as client:
        return client.post(f"{gateway.url}{path}", headers=headers, **kw)  # type: ignore[arg-type]


def request_log_line(caplog: pytest.LogCaptureFixture) -> tuple[str, list[str]]:
    """The gateway's log line of the anthropic request, and all its lines so far. The
    line is written once the handler returns, just after the answer's last byte."""
    for _ in range(200):
        lines = [r.getMessage() for r in caplog.records if r.name == "sidecar.gateway"]
        if line := next((line for line in lines if line.startswith("anthropic ")), None):
            return line, lines
        time.sleep(0.02)
    raise AssertionError(f"no request line among {lines}")


def test_a_request_without_the_token_is_401_and_never_goes_upstream(
    gateway: Gateway, fake: FakeProvider
) -> None:
    for headers in ({}, {"x-api-key": "sk-ant-wrong"}, {"authorization": "Bearer nope"}):
        resp = post(gateway, "/anthropic/v1/messages", headers, json=BODY)
        assert resp.status_code == 401
        assert resp.json()["error"]["type"] == "authentication_error"
    assert fake.requests == []


def test_the_token_as_a_bearer_works(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    key = make_key()
    fake.script(key, [], default=Reply("ok"))
    gateway.add_keys("anthropic", [key])
    resp = post(
        gateway, "/anthropic/v1/messages", {"authorization": f"Bearer {gateway.token}"}, json=BODY
    )
    assert resp.status_code == 200
    # The client's bearer (the gateway token) never goes upstream: only the pool's key.
    assert fake.requests[0].key == fingerprint(key)
    assert "authorization" not in fake.requests[0].headers


def test_a_host_that_is_not_loopback_is_refused(gateway: Gateway, fake: FakeProvider) -> None:
    for host in (
        "evil.example:%d",
        "127.0.0.1:1",
        "localhost",
        "attacker.localhost.example:%d",
        "a.localhost:%d",
    ):
        headers = {**gateway.headers(), "host": host.replace("%d", str(gateway.port))}
        resp = post(gateway, "/anthropic/v1/messages", headers, json=BODY)
        assert resp.status_code == 403, host
    assert fake.requests == []


def test_a_body_over_the_cap_is_413(gateway: Gateway, fake: FakeProvider) -> None:
    big = {**BODY, "messages": [{"role": "user", "content": "x" * (gateway.max_body + 10)}]}
    resp = post(gateway, "/anthropic/v1/messages", gateway.headers(), json=big)
    assert resp.status_code == 413
    assert resp.json()["error"]["type"] == "request_too_large"

    def chunks():  # type: ignore[no-untyped-def]
        # No content-length: the cap holds for a chunked body too.
        for _ in range(20):
            yield b"x" * (gateway.max_body // 10)

    resp = post(gateway, "/openai/v1/chat/completions", gateway.headers(), content=chunks())
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "request_too_large"
    assert fake.requests == []


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_body_reaches_the_provider_as_its_encoding_says(
    gateway: Gateway,
    fake: FakeProvider,
    make_key: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
    encoding: str,
) -> None:
    # The gateway's server inflates the body; forwarded under the client's header, the
    # provider would inflate plain JSON and answer 400 (the fake does as HTTP says).
    key = make_key()
    fake.script(key, [], default=Reply("ok"))
    gateway.add_keys("anthropic", [key])
    plain = json.dumps(BODY).encode()
    sent = gzip.compress(plain) if encoding == "gzip" else zlib.compress(plain)
    headers = {**gateway.headers(), "content-encoding": encoding}
    with caplog.at_level(logging.INFO, logger="sidecar.gateway"):
        resp = post(gateway, "/anthropic/v1/messages", headers, content=sent)
        assert resp.status_code == 200, resp.text
        assert resp.json()["content"][0]["text"] == "ok"
        line, _ = request_log_line(caplog)
    [request] = fake.requests
    assert request.body == BODY
    assert "claude-test-1 200" in line  # the model read from the inflated body


def test_a_body_that_does_not_inflate_is_400_and_never_goes_upstream(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    key = make_key()
    fake.script(key, [], default=Reply("ok"))
    gateway.add_keys("anthropic", [key])
    headers = {**gateway.headers(), "content-encoding": "gzip"}
    resp = post(gateway, "/anthropic/v1/messages", headers, content=b"not gzip at all")
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"
    bomb = gzip.compress(b"x" * (gateway.max_body * 4))  # small on the wire, big inflated
    resp = post(gateway, "/anthropic/v1/messages", headers, content=bomb)
    assert resp.status_code == 413
    assert fake.requests == []
    resp = post(gateway, "/anthropic/v1/messages", gateway.headers(), json=BODY)
    assert resp.status_code == 200  # still serving, the key kept


def test_an_unknown_provider_or_route_is_404_in_the_providers_shape(
    gateway: Gateway, fake: FakeProvider
) -> None:
    resp = post(gateway, "/nosuch/v1/messages", gateway.headers(), json=BODY)
    assert resp.status_code == 404
    assert resp.json()["type"] == "error"  # Anthropic's shape for a /messages path
    resp = post(gateway, "/v1/chat/completions", gateway.headers(), json=BODY)
    assert resp.status_code == 404
    assert "error" in resp.json() and "type" not in resp.json()  # OpenAI's shape
    resp = post(gateway, "/anthropic", gateway.headers(), json=BODY)
    assert resp.status_code == 404
    assert fake.requests == []


def test_no_cors_headers_and_a_preflight_is_refused(gateway: Gateway) -> None:
    with httpx.Client(timeout=10) as client:
        resp = client.options(
            f"{gateway.url}/anthropic/v1/messages",
            headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
        )
    assert resp.status_code == 401
    assert not [h for h in resp.headers if h.lower().startswith("access-control-")]


def test_a_client_that_hangs_up_mid_stream_closes_the_upstream_request(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    key = make_key()
    # Content, then a stall far longer than the test: only a hang-up can end it.
    fake.script(
        key, [], default=Reply("first words then a long pause", chunk=5, stall=120, stall_after=4)
    )
    gateway.add_keys("anthropic", [key])
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST",
            f"{gateway.url}/anthropic/v1/messages",
            headers=gateway.headers(),
            json={**BODY, "stream": True},
        ) as resp,
    ):
        assert resp.status_code == 200
        first = next(resp.iter_bytes())
        assert b"message_start" in first
    fake.wait_for(lambda: any(e.name == "connection_closed" for e in fake.events), timeout=5)


def test_a_client_that_hangs_up_while_the_answer_is_held_closes_the_upstream(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    key = make_key()
    # message_start only, then a stall: the gateway is still holding the answer back.
    fake.script(key, [], default=Reply("never", stall=120, stall_after=1))
    gateway.add_keys("anthropic", [key])
    # The client gives up (a read timeout) and hangs up.
    with (
        httpx.Client(timeout=httpx.Timeout(10, read=0.5)) as client,
        contextlib.suppress(httpx.ReadTimeout),
    ):
        client.post(
            f"{gateway.url}/anthropic/v1/messages",
            headers=gateway.headers(),
            json={**BODY, "stream": True},
        )
    fake.wait_for(lambda: any(e.name == "connection_closed" for e in fake.events), timeout=5)


def test_an_error_the_provider_answers_passes_through_unchanged_but_for_an_echoed_key(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str], caplog: object
) -> None:
    key = make_key()
    fake.script(
        key,
        [],
        default=Error(
            "invalid_request_error", "bad model for key {key}", status=400, echo_key=True
        ),
    )
    gateway.add_keys("anthropic", [key])
    resp = post(gateway, "/anthropic/v1/messages", gateway.headers(), json=BODY)
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"
    assert key not in resp.text and fingerprint(key)[-4:] in resp.text
    assert len(fake.requests) == 1  # a bad request is not replayed


def test_the_log_line_names_the_key_by_fingerprint_only(
    gateway: Gateway,
    fake: FakeProvider,
    make_key: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = make_key()
    fake.script(key, [], default=Reply("ok"))
    gateway.add_keys("anthropic", [key])
    with caplog.at_level(logging.INFO, logger="sidecar.gateway"):
        resp = post(
            gateway, "/anthropic/v1/messages", gateway.headers(), json={**BODY, "stream": True}
        )
        assert resp.status_code == 200
        line, lines = request_log_line(caplog)
    assert "claude-test-1 200" in line and "attempts=1" in line and "in=" in line
    assert f"key={sidecar_fingerprint(key)} " in line
    assert not leaked("\n".join(lines)) and gateway.token not in "\n".join(lines)


def test_the_token_file_is_private(gateway: Gateway, home: Path) -> None:
    path = home / "gateway.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())["token"] == gateway.token


def test_the_clients_anthropic_version_is_kept_and_other_paths_pass_through_once(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    key = make_key()
    fake.script(key, [], default=Reply("ok"))
    gateway.add_keys("anthropic", [key])
    headers = {**gateway.headers(), "Anthropic-Version": "2023-06-01-custom"}
    resp = post(gateway, "/anthropic/v1/messages?beta=true", headers, json=BODY)
    assert resp.status_code == 200
    assert fake.requests[0].headers["anthropic-version"] == "2023-06-01-custom"
    assert fake.requests[0].query == "beta=true"
    # A path the gateway does not know goes upstream as it is, once; the answer is the
    # provider's (the fake has no batches API: its 404).
    resp = post(gateway, "/anthropic/v1/messages/batches", headers, json={"requests": []})
    assert resp.status_code == 404
    assert resp.json()["error"]["type"] == "not_found_error"
    assert [r.path for r in fake.requests] == ["/v1/messages", "/v1/messages/batches"]


def test_a_key_echoed_in_a_mid_stream_error_event_is_replaced_by_its_fingerprint(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    key = make_key()
    fake.script(
        key,
        [],
        default=Reply(
            "some words before the error",
            chunk=4,
            error_after=5,
            error_type="api_error",
            error_message="internal error for key {key}",
            echo_key=True,
        ),
    )
    gateway.add_keys("anthropic", [key])
    resp = post(gateway, "/anthropic/v1/messages", gateway.headers(), json={**BODY, "stream": True})
    assert resp.status_code == 200
    assert "internal error for key" in resp.text
    assert key not in resp.text and sidecar_fingerprint(key) in resp.text


def test_a_429_then_a_401_with_no_key_left_is_a_429_with_retry_after(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str], home: Path
) -> None:
    busy, revoked = make_key(), make_key()
    fake.script(busy, [], default=RateLimited(retry_after=120))
    fake.script(revoked, [], default=InvalidKey())
    gateway.add_keys("anthropic", [busy, revoked])
    resp = post(gateway, "/anthropic/v1/messages", gateway.headers(), json=BODY)
    # The key left is only cooling down: the client is told when to come back.
    assert resp.status_code == 429
    assert 1 <= int(resp.headers["retry-after"]) <= 120
    assert resp.json()["error"]["type"] == "rate_limit_error"
    assert revoked not in (home / "pool.json").read_text()
    assert not leaked(resp.text)


def test_every_anthropic_beta_header_line_goes_upstream(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    # Repeated header lines are one comma-separated list (RFC 9110 5.3); a client that
    # adds its betas one header at a time (reqwest's .header() appends) loses none.
    key = make_key()
    fake.script(key, [], default=Reply("ok"))
    gateway.add_keys("anthropic", [key])
    headers = [
        *gateway.headers().items(),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "prompt-caching-2024-07-31"),
        ("anthropic-beta", "interleaved-thinking-2025-05-14"),
    ]
    resp = httpx.post(f"{gateway.url}/anthropic/v1/messages", headers=headers, json=BODY)
    assert resp.status_code == 200, resp.text
    betas = fake.requests[0].headers["anthropic-beta"].split(",")
    assert betas == ["prompt-caching-2024-07-31", "interleaved-thinking-2025-05-14"]


def test_a_connection_dropped_before_any_answer_is_replayed_invisibly(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    # A dropped connection says nothing about the key: the same one is tried again.
    key = make_key()
    fake.script(key, [Drop()], default=Reply("still answered"))
    gateway.add_keys("anthropic", [key])
    resp = post(gateway, "/anthropic/v1/messages", gateway.headers(), json={**BODY, "stream": True})
    assert resp.status_code == 200
    assert "".join(re.findall(r'"text":"([^"]*)"', resp.text)) == "still answered"
    assert [r.key for r in fake.requests] == [fingerprint(key)] * 2


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_the_usage_at_the_end_of_a_long_stream_is_logged(
    gateway: Gateway,
    fake: FakeProvider,
    make_key: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
    provider: str,
) -> None:
    """Past the first content event only the events that carry usage, an error or the
    end are decoded: the usage still reaches the log line, after thousands of deltas."""
    key = make_key() if provider == "anthropic" else make_key("sk-proj-")
    usage = Usage(input=12, output=3000, cache_read=100, cache_write=5)
    fake.script(key, [], default=Reply("w" * 3000, chunk=1, usage=usage))
    gateway.add_keys(provider, [key])
    if provider == "anthropic":
        path, body = "/anthropic/v1/messages", {**BODY, "stream": True}
        logged = "in=12 out=3000 cache_read=100 cache_write=5"
    else:
        path = "/openai/v1/chat/completions"
        body = {
            "model": "gpt-test",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        # OpenAI counts cache writes in prompt_tokens and reports none apart.
        logged = "in=17 out=3000 cache_read=100 cache_write=0"
    with caplog.at_level(logging.INFO, logger="sidecar.gateway"):
        resp = post(gateway, path, gateway.headers(), json=body)
        assert resp.status_code == 200
        # The line is written as the handler returns, a moment after the client has
        # its answer: look a bounded number of times.
        for _ in range(250):
            if any(" 200 " in r.getMessage() for r in caplog.records):
                break
            time.sleep(0.02)
    (line,) = [r.getMessage() for r in caplog.records if " 200 " in r.getMessage()]
    assert logged in line


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"tools": [{"name": "t", "input_schema": {"properties": {"model": {"type": "string"}}}}]},
        {"metadata": {"model": "not-this-one"}},
    ],
)
def test_the_model_of_a_large_request_is_its_top_level_one(extra: dict[str, object]) -> None:
    """Past 64 KB the body is searched, not parsed, for its model (the log line's, and
    Azure's deployment): a nested "model" key must not be taken for it."""
    from sidecar.gateway._proxy import _model_of

    prompt = 'a long prompt that mentions "model": "quoted" ' * 3000
    body = {"messages": [{"role": "user", "content": prompt}], **extra, "model": "the-model"}
    assert _model_of(json.dumps(body).encode()) == "the-model"
