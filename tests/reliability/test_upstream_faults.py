"""Upstream faults through the engine: each ends in a transparent recovery or a clear error.

The provider is :mod:`sidecar.fake` (real sockets, real chunked SSE); the engine runs
in process with short timeouts (connect 1 s, read 1 s) so that a stall costs about a
second, and every request is bounded by ``asyncio.wait_for``: a hang fails the test.
docs/reliability.md has the matrix: what the user sees in each case, and which test
shows it. A few cases run over stdio too, at the end.

"Recovered" means: the answer is the one the provider meant to give, after a retry on
the same key (network trouble, 5xx: the key is not at fault) or on the next key (429,
529), with a ``restart`` delta first when the client had already seen part of an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import pytest_asyncio

from sidecar.credentials import Credential
from sidecar.engine import Engine
from sidecar.errors import InvalidParams, SidecarError, UpstreamError
from sidecar.events import StreamOutcome
from sidecar.fake import (
    Drop,
    Error,
    FakeProvider,
    Overloaded,
    ProxyErrorPage,
    Reply,
    Step,
    Text,
)
from sidecar.providers import StreamRequest
from sidecar.rotation.keypool import KeyPool
from sidecar.rpc.wire import WireSink
from sidecar.settings import Settings
from sidecar.store import Store
from sidecar.timeouts import Timeouts
from tests.conftest import answer_text, engine_for

ANSWER = "The answer is 42, said slowly enough to span several events."
OK = Reply([Text(ANSWER)], chunk=6)
FAST = Timeouts(connect=1.0, read=1.0, total=30.0)
BOUND = 15.0  # no request below may take longer, whatever happens
SSE = "text/event-stream; charset=utf-8"


def sse_event(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def anthropic_stream(text: bytes, *, complete: bool = True) -> bytes:
    """An Anthropic event stream around ``text`` (raw bytes, inserted as they are)."""
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_raw",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": 3, "output_tokens": 0},
        },
    }
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}}
    head = sse_event("message_start", start) + sse_event("content_block_start", block)
    delta = (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"' + text
    )
    if not complete:
        return head + delta  # cut off mid-event (and, with text, maybe mid-character)
    tail = (
        sse_event("content_block_stop", {"type": "content_block_stop", "index": 0})
        + sse_event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 5},
            },
        )
        + sse_event("message_stop", {"type": "message_stop"})
    )
    return head + delta + b'"}}\n\n' + tail


def raw_reply(body: bytes | str) -> Error:
    """A 200 with an event-stream content type and exactly ``body``."""
    return Error(status=200, body=body, content_type=SSE)


# -- harness ---------------------------------------------------------------------------


class Run:
    """One request's outcome: the result or the error, the deltas, the time it took."""

    def __init__(self) -> None:
        self.outcome: StreamOutcome | None = None
        self.error: SidecarError | None = None
        self.deltas: list[dict[str, Any]] = []
        self.seconds = 0.0

    @property
    def shown_text(self) -> str:
        """What an editor shows: text deltas appended, cleared by a restart."""
        text = ""
        for d in self.deltas:
            if d["kind"] == "restart":
                text = ""
            elif d["kind"] == "text":
                text += d["text"]
        return text

    @property
    def restarts(self) -> int:
        return sum(d["kind"] == "restart" for d in self.deltas)


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def keys(make_key: Callable[..., str]) -> list[str]:
    return [make_key(), make_key()]


def make_engine(
    home: Path, base_url: str, keys: list[str], timeouts: Timeouts = FAST
) -> tuple[Engine, KeyPool]:
    settings = Settings.load(home, {"ANTHROPIC_BASE_URL": base_url})
    keypool = KeyPool(Store(home), settings.env)
    for key in keys:
        keypool.add_key("anthropic", key)
    engine = Engine(keypool, attrs.evolve(settings, timeouts=timeouts), max_cooldown_wait=0.0)
    return engine, keypool


async def run(engine: Engine, bound: float = BOUND) -> Run:
    result = Run()
    request = StreamRequest(
        model="claude-sonnet-4-5",
        messages=[{"role": "user", "content": "What is the answer?"}],
        max_tokens=64,
    )
    started = time.monotonic()
    sink = WireSink("s", result.deltas.extend)  # what the editor would be sent
    try:
        result.outcome = await asyncio.wait_for(engine.stream("anthropic", request, sink), bound)
    except SidecarError as exc:  # the only kind of failure a client may ever see
        result.error = exc
    finally:
        sink.flush()
        result.seconds = time.monotonic() - started
        await engine.aclose()
    return result


def script(fake: FakeProvider, keys: list[str], *per_key: tuple[list[Step], Step]) -> None:
    for key, (steps, default) in zip(keys, per_key, strict=False):
        fake.script(key, steps, default=default)


def cooling(keypool: KeyPool) -> list[str]:
    """Keys resting, whole or for a model (an API key's 429 or 529 is its model's)."""
    return [
        c.fingerprint
        for c in keypool.status("anthropic").credentials
        if c.cooldown_until or c.model_cooldowns
    ]


# -- recovered transparently -----------------------------------------------------------

RECOVERED: list[tuple[str, Step, bool]] = [
    # (id, what the first attempt gets, whether part of an answer was shown before)
    ("reset-before-headers", Drop(), False),
    ("reset-mid-stream", Reply([Text(ANSWER)], chunk=6, drop_after=5), True),
    ("stall-before-first-byte", Reply([Text(ANSWER)], stall=10, stall_after=0), False),
    ("stall-between-events", Reply([Text(ANSWER)], chunk=6, stall=10, stall_after=5), True),
    ("garbage-sse", raw_reply("this is not an event stream\nat all\n\n"), False),
    ("truncated-utf8", raw_reply(anthropic_stream(b"Gr\xc3", complete=False)), None),
    ("500", Error("api_error", status=500), False),
    ("502", Error("api_error", status=502), False),
    ("503", Error("api_error", status=503), False),
    ("huge-error-body", Error("api_error", status=500, body="x" * (20 << 20)), False),
    ("proxy-html-page", ProxyErrorPage(502), False),
]


@pytest.mark.parametrize(
    ("first", "partial"), [(c[1], c[2]) for c in RECOVERED], ids=[c[0] for c in RECOVERED]
)
async def test_a_fault_on_one_attempt_is_retried_on_the_same_key(
    home: Path, fake: FakeProvider, keys: list[str], first: Step, partial: bool | None
) -> None:
    engine, keypool = make_engine(home, fake.url, keys)
    script(fake, keys, ([first], OK), ([], OK))
    result = await run(engine)
    assert result.error is None, result.error
    assert result.outcome is not None and result.outcome.message.text == ANSWER
    assert result.outcome.attempts == 2
    assert result.outcome.credential.secret == keys[0]  # network trouble: same key
    assert result.shown_text == ANSWER
    if partial is not None:
        assert result.restarts == int(partial)
    assert cooling(keypool) == []  # nobody's fault: no key cooled down


async def test_529_rotates_to_the_next_key_which_answers(
    home: Path, fake: FakeProvider, keys: list[str]
) -> None:
    engine, keypool = make_engine(home, fake.url, keys)
    script(fake, keys, ([Overloaded()], OK), ([], OK))
    result = await run(engine)
    assert result.outcome is not None and result.outcome.credential.secret == keys[1]
    assert result.restarts == 0 and result.shown_text == ANSWER
    assert len(cooling(keypool)) == 1


async def test_invalid_utf8_inside_an_event_becomes_a_replacement_character(
    home: Path, fake: FakeProvider, keys: list[str]
) -> None:
    engine, _ = make_engine(home, fake.url, keys)
    script(fake, keys, ([raw_reply(anthropic_stream(b"ok \xff\xfe done"))], OK))
    result = await run(engine)
    assert result.outcome is not None, result.error
    assert result.outcome.message.text == "ok \ufffd\ufffd done"
    assert result.outcome.attempts == 1


# -- a clear error, within the timeouts ----------------------------------------------------

FAILED: list[tuple[str, Step, str]] = [
    # (id, what every attempt gets, what the error message says)
    ("reset-every-time", Drop(), "network error (RemoteProtocolError)"),
    ("stall-every-time", Reply(stall=30, stall_after=0), "sent nothing for 1 s (read timeout)"),
    ("garbage-every-time", raw_reply("<<garbage>>\n\n"), "stream ended early"),
    ("invalid-json-data-line", raw_reply(b"event: message_start\ndata: {nope\n\n"), "not JSON"),
    ("500-every-time", Error("api_error", "Internal server error", status=500), "Internal"),
    ("proxy-page-every-time", ProxyErrorPage(502), "HTTP 502 (non-JSON body)"),
    ("huge-json-error", Error("invalid_request_error", "m" * (4 << 20), status=400), "400: mmm"),
]


@pytest.mark.parametrize(
    ("step", "says"), [(c[1], c[2]) for c in FAILED], ids=[c[0] for c in FAILED]
)
async def test_a_persistent_fault_ends_in_a_clear_error(
    home: Path, fake: FakeProvider, keys: list[str], step: Step, says: str
) -> None:
    engine, keypool = make_engine(home, fake.url, keys)
    script(fake, keys, ([], step), ([], step))
    result = await run(engine)
    assert isinstance(result.error, UpstreamError), result.outcome
    assert result.error.code == -32004
    assert says in result.error.message, result.error.message
    assert len(result.error.message) < 700 and "<html" not in result.error.message.lower()
    assert result.error.data is not None and result.error.data["provider"] == "anthropic"
    assert cooling(keypool) == []
    # Three attempts at most (NETWORK_RETRIES + 1), each bounded by the read timeout.
    assert len(fake.requests) <= 3


async def test_connection_refused_is_a_clear_error_at_once(home: Path, keys: list[str]) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine, _ = make_engine(home, f"http://127.0.0.1:{port}", keys)
    result = await run(engine)
    assert isinstance(result.error, UpstreamError)
    assert "cannot connect to the provider" in result.error.message


@contextlib.contextmanager
def unanswering_listener() -> Iterator[str]:
    """A listening socket whose accept queue is full: a connect to it never completes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    try:
        for _ in range(4):  # fill the backlog; later SYNs are dropped, not refused
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(server.getsockname())
            fillers.append(filler)
        yield url
    finally:
        for filler in fillers:
            filler.close()
        server.close()


async def test_a_connection_that_never_opens_ends_at_the_connect_timeout(
    home: Path, keys: list[str]
) -> None:
    with unanswering_listener() as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.socket() as check:
            check.settimeout(0.3)
            try:
                check.connect(("127.0.0.1", port))
            except ConnectionRefusedError:  # tcp_abort_on_overflow: refused, not dropped
                pytest.skip("this kernel refuses connections to a full accept queue")
            except TimeoutError:
                pass
        engine, _ = make_engine(home, url, keys)
        result = await run(engine)
    assert isinstance(result.error, UpstreamError), result.outcome
    assert "connect timeout" in result.error.message, result.error.message


@pytest.mark.parametrize(
    ("status", "document", "error_class", "billing"),
    [
        (429, {"type": "error", "error": {"type": "rate_limit_error"}}, "rateLimit", False),
        (
            429,
            {"error": {"type": "insufficient_quota", "code": "insufficient_quota"}},
            "rateLimit",
            True,
        ),
        (400, {"type": "error", "error": {"type": "invalid_request_error"}}, "request", False),
        (401, {"error": {"type": "authentication_error"}}, "auth", False),
    ],
)
def test_a_json_error_body_cut_at_the_read_limit_is_still_understood(
    status: int, document: dict[str, Any], error_class: str, billing: bool
) -> None:
    from sidecar.providers._sse import ERROR_BODY_LIMIT
    from sidecar.rotation.classify import parse_failure

    inner = document["error"]
    inner["message"] = "Too much: " + "z" * (ERROR_BODY_LIMIT * 2)
    body = json.dumps(document).encode()[:ERROR_BODY_LIMIT]
    failure = parse_failure(status, {}, body, now=0.0)
    assert failure.failure_class.value == error_class
    assert failure.billing is billing
    assert failure.message.startswith("Too much: zzz") and len(failure.message) <= 500


# -- secrets in upstream errors ---------------------------------------------------------------


async def test_a_provider_echoing_the_key_is_redacted(
    home: Path, fake: FakeProvider, keys: list[str]
) -> None:
    engine, _ = make_engine(home, fake.url, keys[:1])
    echo = Error("invalid_request_error", f"bad request for key {keys[0]}", status=400)
    script(fake, keys, ([], echo))
    result = await run(engine)
    assert isinstance(result.error, UpstreamError)
    assert keys[0] not in result.error.message and keys[0] not in json.dumps(result.error.data)
    assert keys[0][-4:] in result.error.message  # shown by fingerprint


async def test_a_key_that_cannot_go_in_a_header_is_evicted_not_an_internal_error(
    home: Path, fake: FakeProvider, keys: list[str]
) -> None:
    bad = keys[0][:-2] + "é\u0000"
    with pytest.raises(InvalidParams):  # keyAdd refuses it...
        KeyPool(Store(home), env={}).add_key("anthropic", bad)
    # ...but a hand-edited or imported pool file can still hold one.
    with Store(home).transaction() as data:
        data.add_to_pool(Credential("", "anthropic", "api_key", "pool", bad))
    engine, keypool = make_engine(home, fake.url, [keys[1]])
    script(fake, [keys[1]], ([], OK))
    result = await run(engine)
    assert result.outcome is not None and result.outcome.credential.secret == keys[1]
    assert [c.secret for c in keypool.pool("anthropic")] == [keys[1]]


async def test_the_last_key_refused_says_so(
    home: Path, fake: FakeProvider, keys: list[str]
) -> None:
    engine, _ = make_engine(home, fake.url, keys[:1])
    script(fake, keys, ([], Error("authentication_error", "invalid x-api-key")))
    result = await run(engine)
    assert result.error is not None and result.error.code == -32003, result.error
    assert "invalid x-api-key" in result.error.message


# -- the total timeout (needs the engine to enforce it) ----------------------------------------


async def test_a_trickle_that_never_finishes_is_cut_at_the_total_timeout(
    home: Path, fake: FakeProvider, keys: list[str]
) -> None:
    environ = {"ANTHROPIC_BASE_URL": fake.url, "LLM_SIDECAR_TOTAL_TIMEOUT": "1.5"}
    engine = engine_for(home, environ, max_cooldown_wait=0.0)
    engine.keypool.add_key("anthropic", keys[0])
    trickle = Reply([Text("word " * 400)], chunk=5, interval=0.05)  # 20 s, never silent
    script(fake, keys, ([], trickle))
    result = await run(engine, bound=4.0)
    assert isinstance(result.error, UpstreamError), "no error within 4 s"
    assert "total timeout" in result.error.message


async def test_the_read_timeout_comes_from_the_environment(
    home: Path, fake: FakeProvider, keys: list[str]
) -> None:
    environ = {"ANTHROPIC_BASE_URL": fake.url, "LLM_SIDECAR_READ_TIMEOUT": "0.5"}
    engine = engine_for(home, environ, max_cooldown_wait=0.0)
    engine.keypool.add_key("anthropic", keys[0])
    script(fake, keys, ([Reply([Text(ANSWER)], stall=3, stall_after=0)], OK))
    result = await run(engine, bound=10)
    assert result.outcome is not None and result.outcome.attempts == 2


# -- over stdio ----------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def editor(home: Path, fake: FakeProvider) -> AsyncIterator[Any]:
    from tests.server.conftest import start_sidecar, stop_sidecar

    client = await start_sidecar(home, env={"ANTHROPIC_BASE_URL": fake.url})
    yield client
    await stop_sidecar(client)


def ask(stream_id: str) -> dict[str, Any]:
    return {
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "maxTokens": 64,
        "streamId": stream_id,
        "messages": [{"role": "user", "content": "What is the answer?"}],
    }


async def test_over_stdio_faults_recover_or_fail_clearly_and_the_server_keeps_serving(
    editor: Any, fake: FakeProvider, keys: list[str]
) -> None:
    from pygls.exceptions import JsonRpcException

    for key in keys:
        await editor.request("sidecar/keyAdd", {"provider": "anthropic", "key": key})
    fake.script(
        keys[0],
        [Reply([Text(ANSWER)], chunk=6, drop_after=5), ProxyErrorPage(502), OK, Drop(), OK],
        default=ProxyErrorPage(502),
    )
    fake.script(keys[1], [], default=OK)

    # Reset mid-stream, then a proxy page, then the answer: recovered, with one restart
    # (the client had seen part of the first attempt's answer).
    result = await editor.request("sidecar/stream", ask("a"))
    assert answer_text(result) == ANSWER and result["attempts"] == 3
    kinds = [d["kind"] for d in editor.deltas if d["streamId"] == "a"]
    assert kinds.count("restart") == 1
    # Reset before the headers: retried invisibly.
    result = await editor.request("sidecar/stream", ask("c"))
    assert answer_text(result) == ANSWER and result["attempts"] == 2
    assert "restart" not in [d["kind"] for d in editor.deltas if d["streamId"] == "c"]

    # The proxy keeps answering with its HTML page: a clear error, not the page.
    with pytest.raises(JsonRpcException) as err:
        await editor.request("sidecar/stream", ask("b"))
    assert err.value.code == -32004
    assert "HTTP 502 (non-JSON body)" in err.value.message and "<html" not in err.value.message
    status = await editor.request("sidecar/status", {})
    assert status["providers"][0]["size"] == 2  # no key was punished for the proxy's trouble
