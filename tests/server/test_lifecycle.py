"""The LSP lifecycle as Vim 9, Emacs jsonrpc.el, Neovim and VS Code speak it, in raw bytes.

| the client | the sidecar |
|---|---|
| `initialized` (or any message whose params are all optional) without params | as with `{}` |
| a request before `initialize` | -32002, nothing written to the home |
| a request after `shutdown` | -32600 with its id |
| `exit` without / after `shutdown` | exit code 1 / 0, even with stdin still open |
| the editor (`processId`) dies, stdin still held | the sidecar exits |
| answers `window/showDocument` (integer id) with null or an error | the wait ends, quietly |
| `$/cancelRequest` sent as a request | cancels; the cancel is answered under its own id |
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.fake import FakeProvider, Reply, Text
from tests.reliability.support import RawServer, error_code

WAIT = 10.0  # seconds: only so that a broken server fails instead of hanging


@pytest.fixture
def key(make_key: Callable[..., str]) -> str:
    return make_key()


@pytest.fixture
def fresh(home: Path) -> Iterator[RawServer]:
    """A server that has not been initialized."""
    server = RawServer(home)
    yield server
    if server.alive():
        server.close()


def initialize(server: RawServer, process_id: int | None = None, **capabilities: Any) -> None:
    reply = server.request("initialize", {"processId": process_id, "capabilities": capabilities})
    assert reply["result"]["serverInfo"]["name"] == "llm-sidecar", reply


def wait_exit(server: RawServer) -> int:
    try:
        return server.proc.wait(WAIT)
    except subprocess.TimeoutExpired:
        pytest.fail("the sidecar did not exit")


# -- 1. params left out ---------------------------------------------------------------


@pytest.mark.parametrize("params", ["absent", None], ids=["absent", "null"])
def test_initialized_without_params_pushes_the_statuses(home: Path, key: str, params: Any) -> None:
    with RawServer(home, env={"ANTHROPIC_API_KEY": key}) as server:
        initialize(server)
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": "initialized"}
        if params != "absent":
            message["params"] = params
        server.send(message)
        status = server.collect_until(lambda m: m.get("method") == "sidecar/didChangeStatus", WAIT)
        assert status[-1]["params"]["provider"] == "anthropic"
        # A request whose params are all optional, without them, is served too.
        assert "providers" in server.request("sidecar/status")["result"]


# -- 2. before initialize, after shutdown, exit -----------------------------------------


def test_a_request_before_initialize_is_refused_and_writes_nothing(
    fresh: RawServer, home: Path, key: str
) -> None:
    reply = fresh.request("sidecar/keyAdd", {"provider": "anthropic", "key": key}, msg_id=1)
    assert reply["id"] == 1 and error_code(reply) == -32002, reply
    assert not home.exists() or not any(home.iterdir()), sorted(home.iterdir())
    initialize(fresh)  # and the session can still begin
    assert fresh.request("sidecar/status")["result"]["providers"] == []


def test_a_request_after_shutdown_gets_invalid_request(fresh: RawServer) -> None:
    initialize(fresh)
    assert fresh.request("shutdown")["result"] is None
    reply = fresh.request("sidecar/status", {}, msg_id="late")
    assert reply["id"] == "late" and error_code(reply) == -32600, reply


@pytest.mark.parametrize(("shutdown", "code"), [(True, 0), (False, 1)])
def test_exit_code_says_whether_shutdown_came_first(
    fresh: RawServer, shutdown: bool, code: int
) -> None:
    initialize(fresh)
    if shutdown:
        fresh.request("shutdown")
    fresh.send({"jsonrpc": "2.0", "method": "exit"})  # our end of stdin stays open
    assert wait_exit(fresh) == code


# -- 6. the editor's process ------------------------------------------------------------


def test_the_sidecar_exits_when_the_editor_process_dies(fresh: RawServer) -> None:
    editor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        initialize(fresh, process_id=editor.pid)
        assert "result" in fresh.request("sidecar/status")  # alive while the editor is
    finally:
        editor.kill()
        editor.wait(WAIT)
    # The test still holds the sidecar's stdin open, as a grandchild of the editor might.
    assert wait_exit(fresh) == 1


def test_a_process_id_that_is_not_a_process_here_is_not_watched(fresh: RawServer) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(WAIT)  # a pid from another PID namespace looks like this one
    initialize(fresh, process_id=gone.pid)
    assert "result" in fresh.request("sidecar/status")
    assert fresh.alive()


# -- 7. window/showDocument --------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [{"result": None}, {"error": {"code": -32601, "message": "Unhandled method"}}],
    ids=["null", "error"],
)
def test_show_document_has_an_integer_id_and_any_answer_ends_it(
    home: Path, answer: dict[str, Any]
) -> None:
    with RawServer(home, args=["--log-level", "INFO"]) as server:
        initialize(server, window={"showDocument": {"support": True}})
        server.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        login = server.request("sidecar/login", {"provider": "anthropic", "mode": "paste"})
        show = server.collect_until(lambda m: m.get("method") == "window/showDocument", WAIT)[-1]
        assert isinstance(show["id"], int) and not isinstance(show["id"], bool), show
        server.send({"jsonrpc": "2.0", "id": show["id"], **answer})
        deadline = time.monotonic() + WAIT
        while "showDocument answered" not in server.stderr_text():
            assert time.monotonic() < deadline, "the wait for the answer did not end"
            time.sleep(0.05)
        log = server.stderr_text()
        assert "the page was not opened" in log, log
        assert "WARNING" not in log and "Traceback" not in log, log
        cancel = {"loginId": login["result"]["loginId"]}
        assert server.request("sidecar/loginCancel", cancel)["result"]["cancelled"] is True


# -- 8. $/cancelRequest as a request -------------------------------------------------------


@pytest.fixture
def stalled(home: Path, key: str) -> Iterator[RawServer]:
    """A server whose streams hang at the provider until cancelled."""
    with FakeProvider() as fake:
        fake.script(key, [], default=Reply([Text("never")], stall=60, stall_after=0))
        env = {"ANTHROPIC_BASE_URL": fake.url, "ANTHROPIC_API_KEY": key}
        with RawServer(home, env=env) as server:
            initialize(server)
            yield server


STREAM = {
    "provider": "anthropic",
    "model": "claude-sonnet-4-5",
    "maxTokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}


def answers(server: RawServer, ids: list[Any]) -> dict[Any, list[dict[str, Any]]]:
    """Every answer, by id, until each of ``ids`` has one; then late ones, up to a probe."""
    seen: dict[Any, list[dict[str, Any]]] = {}

    def record(message: dict[str, Any]) -> bool:
        if "method" not in message:
            seen.setdefault(message.get("id"), []).append(message)
        return set(ids) <= set(seen)

    server.collect_until(record, WAIT)
    for message in server.probe():
        seen.setdefault(message.get("id"), []).append(message)
    return seen


def test_cancel_sent_as_a_request_cancels_and_is_answered_under_its_own_id(
    stalled: RawServer,
) -> None:
    stalled.send({"jsonrpc": "2.0", "id": 7, "method": "sidecar/stream", "params": STREAM})
    stalled.send({"jsonrpc": "2.0", "id": 8, "method": "$/cancelRequest", "params": {"id": 7}})
    seen = answers(stalled, [8, 7])
    assert [error_code(m) for m in seen[7]] == [-32800], seen
    assert [m.get("result", "missing") for m in seen[8]] == [None], seen


def test_a_cancel_request_with_the_id_it_cancels_never_answers_twice_under_it(
    stalled: RawServer,
) -> None:
    stalled.send({"jsonrpc": "2.0", "id": 9, "method": "sidecar/stream", "params": STREAM})
    stalled.send({"jsonrpc": "2.0", "id": 9, "method": "$/cancelRequest", "params": {"id": 9}})
    seen = answers(stalled, [9, None])
    assert [error_code(m) for m in seen[9]] == [-32800], seen
    assert [error_code(m) for m in seen[None]] == [-32600], seen


def test_any_notification_sent_with_an_id_is_served_and_answered(fresh: RawServer) -> None:
    initialize(fresh)
    reply = fresh.request("$/setTrace", {"value": "off"}, msg_id=11)
    assert reply["id"] == 11 and reply["result"] is None, reply
