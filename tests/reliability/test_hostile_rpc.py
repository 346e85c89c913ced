"""Hostile JSON-RPC over stdio: whatever an editor sends, the sidecar answers and survives.

One server process per test function, many hypothesis examples through it. After
every example a ``sidecar/status`` probe must be answered within
:data:`PROBE_TIMEOUT` seconds: that is what "never hangs" means here. For broken
framing it is measured from the moment the peer has done what any framing needs to
get back in step: supplied the bytes a too-long ``Content-Length`` promised, and
ended the garbage line with ``\\r\\n`` (a reader looking for headers reads lines).

What "the right error" is, and what a server can and cannot do with broken framing:

| input | answer |
|---|---|
| body not JSON (exact length) | one -32700, id null |
| ``Content-Length`` too short | one -32700; the rest is garbage: one more (none if header-like) |
| ``Content-Length`` too long | waits for the missing bytes; once they came, one -32700 |
| header in another case, no space after the colon, bare ``\n`` line ends | the message is served |
| no or unreadable ``Content-Length``, 0 | one -32700; resumes at the next ``Content-Length`` |
| JSON that is not a request object | one -32600, id null (or the message's valid id) |
| well-formed request, unknown method | -32601 with its id |
| well-formed request, bad params | -32602 with its id, ``data.field`` naming the field |
| notification: unknown method, cancel of an unknown id | nothing |

Every key in the store and every key in the hostile payloads is looked for in all
output (stdout and the server's log on stderr): none may appear.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.conftest import leaked
from tests.reliability.support import (
    PROBE_TIMEOUT,
    RawServer,
    ServerGone,
    dumps,
    error_code,
    frame,
    is_response,
)

# Every code docs/protocol.md documents, but -32603: an internal error is a bug.
DOCUMENTED = {
    -32700,
    -32600,
    -32601,
    -32602,
    -32800,
    -32001,
    -32002,
    -32003,
    -32004,
    -32005,
    -32006,
}
SIDECAR_METHODS = [
    "sidecar/status",
    "sidecar/keyAdd",
    "sidecar/keyList",
    "sidecar/keyRemove",
    "sidecar/keyReset",
    "sidecar/stream",
]
# The OAuth methods may or may not be registered yet: -32601 is then right for them.
LOGIN_METHODS = ["sidecar/login", "sidecar/loginComplete", "sidecar/loginCancel", "sidecar/logout"]
FIELD_NAMES = [
    "provider",
    "key",
    "model",
    "messages",
    "maxTokens",
    "index",
    "fingerprint",
    "profile",
    "streamId",
    "system",
    "tools",
    "thinking",
    "temperature",
    "role",
    "content",
    "id",
    "method",
    "params",
    "jsonrpc",  # nested objects that look like messages are plain data
]
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused
EXAMPLES = 150

HOSTILE = settings(
    deadline=None,
    max_examples=EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # CI runs the same examples every time; the seed database is off
    database=None,
    # A hang costs a timeout per example: shrinking one would take minutes. Set
    # RELIABILITY_SHRINK=1 to shrink a failure locally.
    phases=[Phase.explicit, Phase.generate]
    + ([Phase.shrink] if os.environ.get("RELIABILITY_SHRINK") else []),
)


# -- fixtures ----------------------------------------------------------------------------


def _server(home: Path) -> RawServer:
    env = {"ANTHROPIC_BASE_URL": CLOSED, "OPENAI_BASE_URL": CLOSED, "MISTRAL_BASE_URL": CLOSED}
    return RawServer(home, env=env)


@pytest.fixture
def keys(make_key: Callable[..., str]) -> list[str]:
    """Keys of two shapes: one a log filter can recognize, one it cannot (no prefix)."""
    return [make_key(), make_key("sk-ant-api03-"), make_key("")]


def pool_keys(server: RawServer, keys: list[str]) -> None:
    for key, provider in zip(keys, ["anthropic", "anthropic", "mistral"], strict=True):
        reply = server.request("sidecar/keyAdd", {"provider": provider, "key": key})
        assert reply["result"]["added"] is True


def assert_no_secret(server: RawServer) -> None:
    found = leaked(server.output_text())
    assert not found, f"{len(found)} key(s) appeared in the server's output or log"


def assert_well_formed(reply: dict[str, Any], sent_ids: list[Any]) -> None:
    """A response the server may send to anything: JSON-RPC 2.0, a documented code."""
    assert reply.get("jsonrpc") == "2.0", reply
    if "error" in reply:
        code = error_code(reply)
        assert code in DOCUMENTED, f"undocumented or internal error: {reply!r}"
        assert isinstance(reply["error"].get("message"), str)
        assert reply.get("id") is None or reply.get("id") in sent_ids, reply
    else:
        assert "result" in reply and reply.get("id") in sent_ids, reply


# -- strategies --------------------------------------------------------------------------


def json_values(keys: list[str]) -> st.SearchStrategy[Any]:
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=24)
        | st.sampled_from(keys)
        | st.sampled_from(["anthropic", "openai", "mistral", "", "sk-ant-", "\u0000", "é🎉"])
    )
    names = st.sampled_from(FIELD_NAMES) | st.text(max_size=8)
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=5),
        max_leaves=16,
    )


def good_ids() -> st.SearchStrategy[Any]:
    return st.integers(min_value=-(2**31), max_value=2**31) | st.text(min_size=1, max_size=12)


# -- framing -----------------------------------------------------------------------------

# Header names are case-insensitive, the space is optional, bare newlines are read.
LENIENT_HEADERS = [
    b"content-length: %d\r\n\r\n",
    b"Content-Length: %d\n\n",
    b"Content-Length:%d\r\n\r\n",
    b"CONTENT-LENGTH:\t%d\r\n\r\n",
]
BAD_HEADERS = [
    b"Content-Length: abc\r\n\r\n",
    b"Content-Length: -%d\r\n\r\n",
    b"Content-Type: application/json\r\n\r\n",
    b"X-Nonsense\r\nContent-Length %d\r\n\r\n",
    b"\r\n\r\n\r\n",
]


@st.composite
def framing_cases(
    draw: st.DrawFn, keys: list[str]
) -> tuple[str, bytes, bytes, tuple[int, ...], Any]:
    """(kind, bytes to send, follow-up bytes a correct peer would add, how many
    -32700s may come, the id of the message when it is served)."""
    msg_id = f"m-{draw(good_ids())}"  # never a probe's id
    message = {
        "jsonrpc": "2.0",
        "id": msg_id,
        "method": draw(st.sampled_from(SIDECAR_METHODS)),
        "params": draw(json_values(keys)),
    }
    body = dumps(message)
    kinds = ["garbage", "short", "long", "missing", "bad_header", "lenient", "zero"]
    kind = draw(st.sampled_from(kinds))
    if kind == "garbage":
        junk = draw(st.binary(min_size=1, max_size=300))
        try:
            json.loads(junk)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return kind, frame(junk), b"", (1,), None
        return kind, frame(b"\xff" + junk), b"", (1,), None  # made invalid on purpose
    if kind == "short":
        cut = draw(st.integers(min_value=1, max_value=len(body) - 1))
        return kind, b"Content-Length: %d\r\n\r\n" % cut + body, b"", (1, 2), None
    if kind == "long":
        extra = draw(st.integers(min_value=1, max_value=4096))
        head = b"Content-Length: %d\r\n\r\n" % (len(body) + extra)
        return kind, head + body, b"x" * extra, (1,), None
    if kind == "missing":
        return kind, body, b"", (1,), None
    if kind == "bad_header":
        header = draw(st.sampled_from(BAD_HEADERS))
        head = header % len(body) if b"%d" in header else header
        return kind, head + body, b"", (1,), None
    if kind == "lenient":
        header = draw(st.sampled_from(LENIENT_HEADERS))
        return kind, header % len(body) + body, b"", (0,), msg_id
    return kind, b"Content-Length: 0\r\n\r\n", b"", (1,), None


def test_broken_framing_never_kills_or_hangs_the_server(home: Path, keys: list[str]) -> None:
    with _started(home) as server:
        pool_keys(server, keys)

        @HOSTILE
        @given(case=framing_cases(keys))
        def hostile(case: tuple[str, bytes, bytes, tuple[int, ...], Any]) -> None:
            kind, data, follow_up, parse_errors, served = case
            server.write(data)
            server.write(follow_up + b"\r\n")  # complete what was promised, end the line
            before = server.probe()
            answers = [m for m in before if served is not None and m.get("id") == served]
            assert len(answers) == (1 if served is not None else 0), (kind, before)
            errors = [m for m in before if m not in answers]
            assert len(errors) in parse_errors, (kind, before)
            assert all(error_code(m) == -32700 for m in errors), (kind, before)
            assert all("id" in m and m["id"] is None for m in errors), before

        hostile()
        assert server.alive()
        assert_no_secret(server)


class _started:
    """``with _started(home) as server``: a server with the session initialized."""

    def __init__(self, home: Path) -> None:
        self.server = _server(home)

    def __enter__(self) -> RawServer:
        self.server.initialize()
        return self.server

    def __exit__(self, *exc: object) -> None:
        if self.server.alive():
            self.server.close()


# -- whole JSON values -------------------------------------------------------------------


def test_any_json_value_gets_a_well_formed_answer_or_none(home: Path, keys: list[str]) -> None:
    """Arbitrary JSON, message-shaped or not: never a crash, an internal error or a leak."""
    with _started(home) as server:
        pool_keys(server, keys)

        envelopes = st.fixed_dictionaries(
            {},
            optional={
                "jsonrpc": st.sampled_from(["2.0", "1.0", 2, None]),
                "id": good_ids() | st.none() | st.booleans() | st.floats(0.5, 9.5) | st.just([1]),
                "method": st.sampled_from([*SIDECAR_METHODS, "$/cancelRequest", "nope/x"])
                | st.text(max_size=10)
                | st.integers()
                | st.none(),
                "params": json_values(keys),
                "result": json_values(keys),
                "error": json_values(keys),
            },
        )

        @HOSTILE
        @given(value=(envelopes | json_values(keys)).map(lambda v: strip(v, keys)))
        def hostile(value: Any) -> None:
            sent_id = value.get("id") if isinstance(value, dict) else None
            server.send(value)
            for reply in server.probe():
                assert_well_formed(reply, [sent_id])

        hostile()
        assert_no_secret(server)


def strip(value: Any, keys: list[str]) -> Any:
    if isinstance(value, dict) and value.get("method") in ("exit", "shutdown"):
        value["method"] = "nope/x"  # those two end the session on purpose
    return value


# -- well-formed envelopes: the right error, with the right id ----------------------------


def test_each_well_formed_request_gets_exactly_one_answer(home: Path, keys: list[str]) -> None:
    with _started(home) as server:
        pool_keys(server, keys)

        @HOSTILE
        @given(
            method=st.sampled_from([*SIDECAR_METHODS, *LOGIN_METHODS, "sidecar/nope", "x/y"]),
            params=json_values(keys),
        )
        def hostile(method: str, params: Any) -> None:
            msg_id = server.next_id()
            server.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
            seen = server.collect_until(lambda m: is_response(m, msg_id), 15)
            reply = seen[-1]
            assert_well_formed(reply, [msg_id])
            stray = [m for m in seen[:-1] if "method" not in m]
            assert not stray, f"answers nobody asked for: {stray!r}"
            if method in SIDECAR_METHODS:
                if not isinstance(params, dict) and params is not None:  # null: absent
                    assert error_code(reply) == -32602, reply
                    assert reply["error"]["data"] == {"field": "params"}
            elif method not in LOGIN_METHODS:
                assert error_code(reply) == -32601, reply
            # Nothing was answered twice: the probe sees no late duplicate.
            late = server.probe()
            assert not [m for m in late if m.get("id") == msg_id], late

        hostile()
        assert_no_secret(server)


# -- params of the wrong type: -32602 naming the field ------------------------------------

_STRING = st.integers() | st.floats(allow_nan=False) | st.booleans() | st.lists(st.integers())
_INT = (
    st.text(max_size=5)
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer())
    | st.booleans()
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)
_LIST = st.text(max_size=5) | st.integers() | st.booleans() | st.dictionaries(st.text(), st.none())
_OBJECT = st.text(max_size=5) | st.integers() | st.booleans() | st.lists(st.integers())
_FLOAT = st.text(max_size=5) | st.booleans() | st.lists(st.integers()) | st.just({})

STREAM_BASE = {
    "provider": "anthropic",
    "model": "claude-sonnet-4-5",
    "maxTokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}
# method → (valid params, {field: strategy of wrong-typed values})
WRONG_TYPES: dict[str, tuple[dict[str, Any], dict[str, st.SearchStrategy[Any]]]] = {
    "sidecar/status": ({}, {"provider": _STRING}),
    "sidecar/keyAdd": ({"provider": "anthropic"}, {"provider": _STRING, "key": _STRING}),
    "sidecar/keyList": ({"provider": "anthropic"}, {"provider": _STRING}),
    "sidecar/keyReset": ({"provider": "anthropic"}, {"provider": _STRING}),
    "sidecar/keyRemove": (
        {"provider": "anthropic"},
        {"provider": _STRING, "fingerprint": _STRING, "index": _INT},
    ),
    "sidecar/stream": (
        STREAM_BASE,
        {
            "provider": _STRING,
            "model": _STRING,
            "maxTokens": _INT,
            "messages": _LIST,
            "system": st.integers() | st.booleans() | st.just({}),
            "tools": _LIST,
            "thinking": _OBJECT,
            "temperature": _FLOAT,
            "profile": _STRING,
            "streamId": _STRING,
        },
    ),
}


@st.composite
def wrong_params(draw: st.DrawFn) -> tuple[str, dict[str, Any], set[str]]:
    method = draw(st.sampled_from(sorted(WRONG_TYPES)))
    base, fields = WRONG_TYPES[method]
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=3, unique=True))
    params = dict(base)
    for name in chosen:
        params[name] = draw(fields[name])
    return method, params, set(chosen)


def test_params_of_the_wrong_type_name_the_field(home: Path, keys: list[str]) -> None:
    with _started(home) as server:
        pool_keys(server, keys)

        @HOSTILE
        @given(case=wrong_params())
        def hostile(case: tuple[str, dict[str, Any], set[str]]) -> None:
            method, params, wrong = case
            reply = server.request(method, params)
            assert error_code(reply) == -32602, (method, params, reply)
            field = reply["error"]["data"]["field"]
            assert field.split(".")[0].split("[")[0] in wrong, (field, wrong)

        hostile()
        server.probe()
        assert_no_secret(server)


# -- sizes, depth, floods ------------------------------------------------------------------


def test_deep_nesting_and_many_megabytes(home: Path, keys: list[str]) -> None:
    with _started(home) as server:
        pool_keys(server, keys)
        depth = 100_000
        for body in (
            b"[" * depth + b"]" * depth,
            b'{"jsonrpc":"2.0","id":7,"method":"sidecar/status","params":{"provider":'
            + b"[" * depth
            + b"]" * depth
            + b"}}",
            b'{"a":' * depth + b"1" + b"}" * depth,
        ):
            server.write(frame(body))
            before = server.probe()
            assert len(before) == 1 and error_code(before[0]) in (-32700, -32600), before
            assert before[0].get("id") is None

        # Each request's own timeout only keeps a hung server from hanging the suite.
        for megabytes in (1, 8, 32):
            big = keys[0] + "x" * (megabytes << 20)
            reply = server.request(
                "sidecar/keyList", {"provider": "anthropic", "padding": big}, timeout=30
            )
            assert "result" in reply  # unknown fields are ignored, however large
            reply = server.request(
                "sidecar/stream",
                {
                    **STREAM_BASE,
                    "maxTokens": "many",
                    "messages": [{"role": "user", "content": big}],
                },
                timeout=30,
            )
            assert error_code(reply) == -32602 and reply["error"]["data"]["field"] == "maxTokens"
            many = {"provider": "anthropic", "items": [keys[1]] * (megabytes * 20_000)}
            assert "result" in server.request("sidecar/keyList", many, timeout=30)
        server.probe()
        assert_no_secret(server)


def test_a_flood_of_requests_cancels_and_notifications_is_answered_exactly_once(
    home: Path, keys: list[str]
) -> None:
    with _started(home) as server:
        pool_keys(server, keys)
        frames = []
        expected: dict[str, int | None] = {}
        for n in range(1500):
            msg_id = f"f{n}"
            kind = n % 6
            if kind == 0:
                message: dict[str, Any] = {"method": "sidecar/status", "params": {}}
                expected[msg_id] = None
            elif kind == 1:
                message = {"method": "sidecar/keyList", "params": {"provider": "anthropic"}}
                expected[msg_id] = None
            elif kind == 2:
                message = {"method": "sidecar/keyList", "params": {"provider": 5}}
                expected[msg_id] = -32602
            elif kind == 3:
                message = {"method": "sidecar/flood", "params": {}}
                expected[msg_id] = -32601
            elif kind == 4:  # a cancel for an id that never existed: a notification
                frames.append(
                    frame(
                        dumps(
                            {
                                "jsonrpc": "2.0",
                                "method": "$/cancelRequest",
                                "params": {"id": f"no-{n}"},
                            }
                        )
                    )
                )
                message = {"method": "sidecar/status", "params": {"provider": "anthropic"}}
                expected[msg_id] = None
            else:  # an unknown notification: ignored
                frames.append(
                    frame(dumps({"jsonrpc": "2.0", "method": "sidecar/noise", "params": {"n": n}}))
                )
                message = {"method": "sidecar/keyReset", "params": {"provider": "mistral"}}
                expected[msg_id] = None
            frames.append(frame(dumps({"jsonrpc": "2.0", "id": msg_id, **message})))
        started = time.monotonic()
        server.write(b"".join(frames))
        answered: dict[str, dict[str, Any]] = {}
        deadline = started + 30
        while len(answered) < len(expected):
            message = server.next_message(deadline - time.monotonic())
            assert message is not None, f"only {len(answered)} of {len(expected)} answered"
            if "method" in message:
                continue
            msg_id = message.get("id")
            assert msg_id in expected and msg_id not in answered, message
            answered[msg_id] = message
        for msg_id, code in expected.items():
            assert error_code(answered[msg_id]) == code, answered[msg_id]
        assert not [m for m in server.probe()], "answers to notifications"
        assert_no_secret(server)


# -- known bugs: the right behaviour, pinned; each names its fix --------------------------


@pytest.fixture
def server(home: Path) -> Any:
    with _started(home) as server:
        yield server


def test_a_request_without_params_is_served(server: RawServer) -> None:
    msg_id = server.next_id()
    server.send({"jsonrpc": "2.0", "id": msg_id, "method": "sidecar/status"})
    reply = server.collect_until(lambda m: m.get("id") == msg_id or "error" in m, PROBE_TIMEOUT)[-1]
    assert reply.get("id") == msg_id and "result" in reply, reply


def test_a_notification_without_params_is_ignored(server: RawServer) -> None:
    server.send({"jsonrpc": "2.0", "method": "sidecar/noSuchNotification"})
    assert server.probe() == []


def test_a_request_of_another_jsonrpc_version_gets_invalid_request(server: RawServer) -> None:
    server.send({"jsonrpc": "1.0", "id": 41, "method": "sidecar/status", "params": {}})
    before = server.probe()
    assert [(m.get("id"), error_code(m)) for m in before] == [(41, -32600)]


def test_an_lsp_request_with_bad_params_is_answered_with_its_id(server: RawServer) -> None:
    server.send({"jsonrpc": "2.0", "id": 42, "method": "textDocument/hover", "params": {}})
    before = server.probe()
    assert [(m.get("id"), error_code(m)) for m in before] in ([(42, -32602)], [(42, -32601)])


def test_params_holding_a_jsonrpc_key_are_just_data(server: RawServer) -> None:
    params = {"provider": "anthropic", "extra": {"jsonrpc": "2.0", "note": "user data"}}
    reply = server.request("sidecar/keyList", params, timeout=PROBE_TIMEOUT)
    assert "result" in reply


def test_json_nested_too_deep_is_a_parse_error(server: RawServer) -> None:
    server.write(frame(b"[" * 100_000 + b"]" * 100_000))
    assert [error_code(m) for m in server.probe()] == [-32700]


def test_a_huge_content_length_does_not_kill_the_server(server: RawServer) -> None:
    server.write(b"Content-Length: 99999999999999\r\n\r\n{}")
    time.sleep(1.0)
    assert server.alive(), "the server died"
    reply = server.next_message(PROBE_TIMEOUT)
    assert reply is not None and error_code(reply) in (-32600, -32700)


@pytest.mark.parametrize(
    ("method", "field"),
    [
        ("sidecar/keyList", "provider"),
        ("sidecar/keyRemove", "fingerprint"),
        ("sidecar/stream", "profile"),
    ],
)
def test_a_key_in_any_field_is_never_echoed(
    server: RawServer, make_key: Callable[..., str], method: str, field: str
) -> None:
    key = make_key("")  # no vendor prefix: only the request itself says it is secret
    params = {**STREAM_BASE} if method == "sidecar/stream" else {"provider": "anthropic"}
    pool_keys_for_echo(server, make_key)
    params[field] = key
    reply = server.request(method, params)
    assert error_code(reply) == -32602
    assert key not in json.dumps(reply) and key not in server.stderr_text()


def pool_keys_for_echo(server: RawServer, make_key: Callable[..., str]) -> None:
    server.request("sidecar/keyAdd", {"provider": "anthropic", "key": make_key()})


@pytest.mark.parametrize("method", [0, None])
def test_a_method_that_is_not_a_string_is_an_invalid_request(
    server: RawServer, method: Any
) -> None:
    server.send({"jsonrpc": "2.0", "id": 43, "method": method, "params": {}})
    before = server.probe()
    assert [error_code(m) for m in before] == [-32600], before


def test_server_survives_everything_above_in_one_session(home: Path) -> None:
    """The inputs above, all in one session: none of them (but the huge
    Content-Length) may take the server down or stop it serving."""
    with _started(home) as server:
        for message in (
            {"jsonrpc": "2.0", "id": 1, "method": "sidecar/status"},
            {"jsonrpc": "2.0", "method": "sidecar/noSuchNotification"},
            {"jsonrpc": "1.0", "id": 2, "method": "sidecar/status", "params": {}},
            {"jsonrpc": "2.0", "id": 3, "method": "textDocument/hover", "params": {}},
            {"jsonrpc": "2.0", "id": 4, "method": "$/cancelRequest", "params": {"id": 4}},
            {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": "nonsense"},
            {"jsonrpc": "2.0", "id": 5, "result": {"unsolicited": True}},
            {"jsonrpc": "2.0", "id": 6, "error": {"code": "x"}},
            {"jsonrpc": "2.0", "id": 7, "method": 7, "params": {}},
        ):
            server.send(message)
            for reply in server.probe():
                served = reply.get("id") == 1  # a request without params is fine
                assert reply.get("jsonrpc") == "2.0" and ("error" in reply or served), reply
        try:
            server.write(frame(b"[" * 100_000 + b"]" * 100_000))
            server.probe()
        except ServerGone:  # pragma: no cover - a failure, with a clear message
            pytest.fail("deep nesting stopped the server")
