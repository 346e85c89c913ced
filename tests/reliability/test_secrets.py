"""Secrets stay secret: not in the log at DEBUG, not sent anywhere but their provider.

The root conftest.py already fails any test whose captured output or log holds a
recorded key, and stop_sidecar scans every JSON-RPC message of the end-to-end tests.
This module adds what those cannot see: the log *file* of a real server at DEBUG
level (pygls logs every message it sends and every message it cannot handle), and
where keys travel on the network.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.engine import Engine
from sidecar.errors import UpstreamError
from sidecar.fake import Error, FakeProvider, InvalidKey, RateLimited, Reply, Text, fingerprint
from sidecar.logs import RedactingFilter, redact_text
from sidecar.providers import StreamRequest
from sidecar.rotation.keypool import KeyPool
from tests.conftest import answer_text, engine_for, leaked
from tests.reliability.support import RawServer, error_code


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


def ask(provider: str = "anthropic", model: str = "claude-sonnet-4-5") -> dict[str, Any]:
    return {
        "provider": provider,
        "model": model,
        "maxTokens": 32,
        "messages": [{"role": "user", "content": "hello"}],
    }


def test_a_debug_log_file_holds_no_key(
    tmp_path: Path, home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    """keyAdd, streams that succeed, rotate, evict and fail, malformed messages that carry
    keys, keyRemove: the log at DEBUG level has every message and not one key."""
    log_file = tmp_path / "logs" / "sidecar.log"
    shaped = [make_key(), make_key()]  # sk-ant-api03-…: recognizable by shape
    unshaped = make_key("")  # a Mistral-style key: 32 characters, no prefix
    openai_key = make_key("sk-proj-")
    stray = make_key("")  # never pooled: only ever inside malformed messages
    fake.script(shaped[0], [RateLimited(retry_after=60)], default=Reply([Text("one")]))
    fake.script(shaped[1], [], default=Reply([Text("two")]))
    midstream = Reply([Text("three")], error_after=3, error_type="api_error", error_message="oops")
    fake.script(unshaped, [midstream], default=Reply([Text("3")]))
    # A provider that quotes the key back in its error, as some do.
    fake.script(openai_key, [], default=InvalidKey(f"Incorrect API key provided: {openai_key}"))
    env = {
        "ANTHROPIC_BASE_URL": fake.url,
        "MISTRAL_BASE_URL": fake.url + "/v1",
        "OPENAI_BASE_URL": fake.url + "/v1",
    }
    args = ["serve", "--log-file", str(log_file), "--log-level", "DEBUG"]
    server = RawServer(home, args=args, env=env)
    try:
        server.initialize()
        for key, provider in [
            (shaped[0], "anthropic"),
            (shaped[1], "anthropic"),
            (unshaped, "mistral"),
            (openai_key, "openai"),
        ]:
            reply = server.request("sidecar/keyAdd", {"provider": provider, "key": key})
            assert reply["result"]["added"], reply
        # 429 on the first key: rotated to the second.
        assert answer_text(server.request("sidecar/stream", ask())["result"]) == "two"
        # A mid-stream error, then the replay.
        reply = server.request("sidecar/stream", ask("mistral", "m"))
        assert answer_text(reply["result"]) == "3"
        # 401 that echoes the key: evicted; with no other openai key, an error.
        reply = server.request("sidecar/stream", ask("openai", "gpt-4o-mini"))
        assert error_code(reply) in (-32003, -32001), reply  # see test_upstream_faults
        # Malformed messages that carry keys: pygls logs what it cannot handle.
        for message in (
            {"jsonrpc": "1.0", "id": 1, "method": "sidecar/keyAdd", "params": {"key": stray}},
            {"jsonrpc": "2.0", "method": "sidecar/keyAdd", "params": {"provider": 1, "key": stray}},
            {"jsonrpc": "2.0", "id": 2, "method": "sidecar/keyAdd", "params": {"key": stray}},
            {"jsonrpc": "2.0", "id": 3, "method": "sidecar/nope", "params": {"key": stray}},
            {"jsonrpc": "2.0", "id": 4, "method": "sidecar/keyAdd", "params": [stray]},
        ):
            server.send(message)
            server.probe()
        bad_key = {"provider": "anthropic", "key": f"{stray} with spaces"}
        assert error_code(server.request("sidecar/keyAdd", bad_key)) == -32602
        # Removed keys stay redacted for the life of the process.
        reply = server.request("sidecar/keyRemove", {"provider": "anthropic", "index": 1})
        assert "result" in reply, reply
        assert server.request("sidecar/keyList", {"provider": "anthropic"})["result"]
    finally:
        code = server.close()
    assert code == 0
    log = log_file.read_text()
    assert "DEBUG" in log and "sidecar/didChangeStatus" in log, "DEBUG logging was not on"
    found = leaked(log)
    assert not found, f"{len(found)} key(s) in the DEBUG log"
    assert not leaked(server.output_text())
    assert fingerprint(shaped[1]) in log or shaped[1][-4:] in log  # keys shown by fingerprint


# -- where keys travel ---------------------------------------------------------------------


def engine_and_pool(home: Path, env: dict[str, str]) -> tuple[Engine, KeyPool]:
    engine = engine_for(home, env, max_cooldown_wait=0.0)
    return engine, engine.keypool


def request() -> StreamRequest:
    return StreamRequest(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=16)


async def test_each_key_goes_only_to_its_own_providers_base_url(
    home: Path, make_key: Callable[..., str]
) -> None:
    anthropic_keys = [make_key(), make_key()]
    openai_keys = [make_key("sk-proj-"), make_key("sk-proj-")]
    with FakeProvider() as a, FakeProvider() as b:
        a.script(anthropic_keys[0], [], default=InvalidKey())  # evicted, the other answers
        a.script(anthropic_keys[1], [], default=Reply([Text("a")]))
        b.script(openai_keys[0], [RateLimited(retry_after=60)], default=Reply([Text("b")]))
        b.script(openai_keys[1], [], default=Reply([Text("b")]))
        env = {"ANTHROPIC_BASE_URL": a.url, "OPENAI_BASE_URL": b.url + "/v1"}
        engine, keypool = engine_and_pool(home, env)
        for key in anthropic_keys:
            keypool.add_key("anthropic", key)
        for key in openai_keys:
            keypool.add_key("openai", key)
        try:
            for provider in ("anthropic", "openai", "anthropic", "openai"):
                await engine.stream(provider, request())
        finally:
            await engine.aclose()
        seen_a = {r.key for r in a.requests}
        seen_b = {r.key for r in b.requests}
    assert seen_a and seen_a <= {fingerprint(k) for k in anthropic_keys}
    assert seen_b and seen_b <= {fingerprint(k) for k in openai_keys}
    for recorded in [*a.requests, *b.requests]:
        assert recorded.headers["user-agent"].startswith("llm-sidecar/")


async def test_a_redirect_is_not_followed_so_the_key_stays_home(
    home: Path, make_key: Callable[..., str]
) -> None:
    key = make_key()
    with FakeProvider() as provider, FakeProvider(keys=[key]) as elsewhere:
        moved = Error(
            "api_error", "moved", status=307, headers={"location": elsewhere.url + "/v1/messages"}
        )
        provider.script(key, [], default=moved)
        engine, keypool = engine_and_pool(home, {"ANTHROPIC_BASE_URL": provider.url})
        keypool.add_key("anthropic", key)
        try:
            with pytest.raises(UpstreamError) as err:
                await engine.stream("anthropic", request())
        finally:
            await engine.aclose()
        assert elsewhere.requests == [], "the request (and its key) followed the redirect"
    assert err.value.data is not None and err.value.data["status"] == 307


# -- the redacting filter ------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{'provider': 'mistral', 'key': '%s'}",
        '{"provider":"mistral","key":"%s"}',
        "KeyAddParams(provider='mistral', key='%s')",
        '{"refreshToken": "%s", "accessToken": "%s"}',
        "authorization: Bearer %s",
        "x-api-key: '%s'",
    ],
)
def test_secret_fields_are_redacted_whatever_the_key_looks_like(
    template: str, make_key: Callable[..., str]
) -> None:
    key = make_key("")
    text = template.replace("%s", key)
    out = redact_text(text)
    assert key not in out and key[-4:] in out


def test_the_filter_remembers_keys_that_left_the_pool(make_key: Callable[..., str]) -> None:
    key = make_key("")
    pool = [key]
    flt = RedactingFilter(lambda: list(pool))
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "added %s", (key,), None)
    flt.filter(record)
    assert key not in record.getMessage()
    pool.clear()  # removed or evicted: the 401 that echoes it may be logged after
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "401: %s", (key,), None)
    flt.filter(record)
    assert key not in record.getMessage()


def test_tracebacks_are_redacted(make_key: Callable[..., str]) -> None:
    key = make_key("")
    flt = RedactingFilter(lambda: [key])
    try:
        raise ValueError(f"boom {key}")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    flt.filter(record)
    formatted = logging.Formatter().format(record)
    assert key not in formatted and "boom" in formatted


def test_a_broken_store_does_not_break_logging() -> None:
    def broken() -> list[str]:
        raise OSError("store unreadable")

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "fine %d", (1,), None)
    assert RedactingFilter(broken).filter(record) and record.getMessage() == "fine 1"


def test_a_record_whose_args_do_not_fit_is_kept(make_key: Callable[..., str]) -> None:
    key = make_key()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d %d", (key,), None)
    RedactingFilter().filter(record)
    assert key not in record.getMessage()


def test_no_secret_in_json_dumps_of_a_redacted_value(make_key: Callable[..., str]) -> None:
    key = make_key("")
    assert key not in redact_text(json.dumps({"params": {"key": key}}))
