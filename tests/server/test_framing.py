"""Bytes no JSON-RPC library would send: the server answers with an error and keeps serving."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.support import (
    PROBE_TIMEOUT,
    RawServer,
    dumps,
    error_code,
    frame,
    is_response,
    raw_server,
)


class RawPeer:
    """A peer that writes raw LSP-framed bytes to the server and reads its replies."""

    def __init__(self, home: Path) -> None:
        env = {**os.environ, "LLM_SIDECAR_HOME": str(home)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sidecar"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )

    def send_bytes(self, body: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def send(self, message: Any) -> None:
        self.send_bytes(json.dumps(message).encode())

    def read(self, timeout: float = 10.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        length = None
        while True:
            assert time.monotonic() < deadline, "no reply from the server"
            line = self.proc.stdout.readline()
            assert line, "the server closed its output"
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
            elif line in (b"\r\n", b"\n") and length is not None:
                return json.loads(self.proc.stdout.read(length))  # type: ignore[no-any-return]

    def read_response(self, msg_id: Any) -> dict[str, Any]:
        """The next response with ``msg_id``, skipping notifications."""
        while True:
            message = self.read()
            if "method" not in message and message.get("id") == msg_id:
                return message

    def request(self, msg_id: int, method: str, params: Any) -> dict[str, Any]:
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return self.read_response(msg_id)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def peer(home: Path) -> Iterator[RawPeer]:
    peer = RawPeer(home)
    init = peer.request(0, "initialize", {"processId": None, "capabilities": {}})
    assert init["result"]["serverInfo"]["name"] == "llm-sidecar"
    yield peer
    assert peer.proc.poll() is None, "the server died"
    peer.close()


def assert_still_serving(peer: RawPeer, msg_id: int = 99) -> None:
    reply = peer.request(msg_id, "sidecar/status", {})
    assert "providers" in reply["result"]


@pytest.mark.parametrize(
    "body", [b"{not json", b'{"jsonrpc": "2.0", "id": 1, "method": ', b"\xff\xfe garbage"]
)
def test_malformed_json_gets_a_parse_error(peer: RawPeer, body: bytes) -> None:
    peer.send_bytes(body)
    reply = peer.read_response(None)
    assert reply["error"]["code"] == -32700
    assert "id" in reply and reply["id"] is None, reply  # JSON-RPC 2.0 section 5
    assert_still_serving(peer)


@pytest.mark.parametrize("message", [[1, 2, 3], "hello", 42, {"id": 5, "method": "sidecar/status"}])
def test_a_json_value_that_is_not_a_request_gets_invalid_request(
    peer: RawPeer, message: Any
) -> None:
    peer.send(message)
    expected_id = message.get("id") if isinstance(message, dict) else None
    reply = peer.read_response(expected_id)
    assert reply["error"]["code"] == -32600
    assert "id" in reply and reply["id"] == expected_id, reply  # null when unknown
    assert_still_serving(peer)


def test_params_of_the_wrong_shape_get_invalid_params(peer: RawPeer) -> None:
    reply = peer.request(3, "sidecar/keyAdd", "anthropic")
    assert reply["error"]["code"] == -32602
    assert_still_serving(peer)


def test_notifications_for_unknown_methods_are_ignored(peer: RawPeer) -> None:
    peer.send({"jsonrpc": "2.0", "method": "sidecar/noSuchNotification", "params": {}})
    peer.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 12345}})
    assert_still_serving(peer)


# -- headers as editors write them (issue 11, items 3-5) ----------------------------------


@pytest.fixture
def raw(home: Path) -> Iterator[RawServer]:
    with raw_server(home) as server:
        yield server


def status_request(msg_id: str) -> bytes:
    return dumps({"jsonrpc": "2.0", "id": msg_id, "method": "sidecar/status", "params": {}})


@pytest.mark.parametrize(
    "header",
    [
        b"content-length:%d\r\n\r\n",
        b"CONTENT-LENGTH: %d\r\n\r\n",
        b"Content-Length:%d\r\n\r\n",
        b"Content-Length: \t%d \r\n\r\n",
        b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\ncontent-length: %d\r\n\r\n",
        b"Content-Length: %d\n\n",
    ],
    ids=["lower-no-space", "upper", "no-space", "tabs", "content-type-first", "bare-newlines"],
)
def test_header_names_are_case_insensitive_and_the_space_optional(
    raw: RawServer, header: bytes
) -> None:
    for n in range(3):  # one such message must not make the server deaf to the next
        body = status_request(f"h{n}")
        raw.write(header % len(body) + body)
        reply = raw.collect_until(lambda m, i=f"h{n}": is_response(m, i), PROBE_TIMEOUT)[-1]
        assert "providers" in reply["result"], reply
    assert raw.probe() == []


@pytest.mark.parametrize(
    "garbage",
    [
        b"Content-Length: abc\r\n\r\n" + status_request("lost"),
        b"Content-Length: -5\r\n\r\n" + status_request("lost"),
        b"X-Nonsense\r\nContent-Length 12\r\n\r\n" + status_request("lost"),
        b"Content-Type: application/json\r\n\r\n" + status_request("lost"),
        status_request("lost"),  # no header at all
        b"Content-Length: 0\r\n\r\n",
    ],
    ids=["not-a-number", "negative", "no-colon", "no-length", "no-header", "empty-body"],
)
def test_an_unreadable_header_gets_a_parse_error_and_the_next_message_is_served(
    raw: RawServer, garbage: bytes
) -> None:
    # No line end after the garbage: the next header is glued to it, as when an
    # editor's body was never framed. The reader finds the Content-Length anyway.
    raw.write(garbage + frame(status_request("next")))
    seen = raw.collect_until(lambda m: is_response(m, "next"), PROBE_TIMEOUT)
    errors = [m for m in seen if "method" not in m and m.get("id") != "next"]
    assert [error_code(m) for m in errors] == [-32700], seen
    assert "id" in errors[0] and errors[0]["id"] is None, errors
    assert "providers" in seen[-1]["result"]
    assert raw.probe() == []


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("sidecar/keyAdd", {"provider": "anthropic", "key": "sk-ant-api03-\ud800xyz"}, "key"),
        ("sidecar/status", {"provider": "anthr\udfffopic"}, "provider"),
        (
            "sidecar/stream",
            {
                "provider": "anthropic",
                "model": "claude-sonnet-4-5",
                "maxTokens": 16,
                "messages": [
                    {"role": "user", "content": "ok"},
                    {"role": "user", "content": "\ud83d"},
                ],
            },
            "messages[1].content",
        ),
        ("sidecar/login", {"provider": "anthropic", "profile": "w\udc00rk"}, "profile"),
    ],
)
def test_a_lone_surrogate_is_invalid_params_naming_the_field(
    home: Path, make_key: Callable[..., str], method: str, params: dict[str, Any], field: str
) -> None:
    # A key and a closed port: a stream gets as far as building its HTTP request.
    env = {"ANTHROPIC_API_KEY": make_key(), "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"}
    with raw_server(home, env=env) as server:
        reply = server.request(method, params)
        assert error_code(reply) == -32602, reply
        assert reply["error"]["data"] == {"field": field}, reply
        text = json.dumps(reply)
        assert "Traceback" not in text and ".py" not in text and "traceback" not in text, reply
