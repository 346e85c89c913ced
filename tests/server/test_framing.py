"""Bytes no JSON-RPC library would send: the server answers with an error and keeps serving."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


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
    assert_still_serving(peer)


@pytest.mark.parametrize("message", [[1, 2, 3], "hello", 42, {"id": 5, "method": "sidecar/status"}])
def test_a_json_value_that_is_not_a_request_gets_invalid_request(
    peer: RawPeer, message: Any
) -> None:
    peer.send(message)
    expected_id = message.get("id") if isinstance(message, dict) else None
    reply = peer.read_response(expected_id)
    assert reply["error"]["code"] == -32600
    assert_still_serving(peer)


def test_params_of_the_wrong_shape_get_invalid_params(peer: RawPeer) -> None:
    reply = peer.request(3, "sidecar/keyAdd", "anthropic")
    assert reply["error"]["code"] == -32602
    assert_still_serving(peer)


def test_notifications_for_unknown_methods_are_ignored(peer: RawPeer) -> None:
    peer.send({"jsonrpc": "2.0", "method": "sidecar/noSuchNotification", "params": {}})
    peer.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 12345}})
    assert_still_serving(peer)
