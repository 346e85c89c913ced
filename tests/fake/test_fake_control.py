"""Control endpoints, the JSON step format, the log's secrecy and the subprocess entry."""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from fake_support import KEY, KEY2, RawClient, anthropic_headers, messages_body

from sidecar.fake import (
    Drop,
    Error,
    FakeProvider,
    Overloaded,
    ProxyErrorPage,
    RateLimited,
    RedactedThinking,
    Reply,
    ScopeRefused,
    Text,
    Thinking,
    ToolUse,
    Usage,
    fingerprint,
    parse_step,
)

NODE_KEY = "sk-ant-oat01-node-test-token-abcdef"


def post(fake: FakeProvider, path: str, body: Any) -> httpx.Response:
    return httpx.post(fake.url + path, json=body, timeout=5)


def sdk(fake: FakeProvider, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=key, base_url=fake.url, max_retries=0, timeout=5)


def ask(fake: FakeProvider, key: str) -> anthropic.types.Message:
    with sdk(fake, key).messages.stream(
        model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        return stream.get_final_message()


# -- the JSON step format ------------------------------------------------------------


def test_json_steps_build_the_same_objects_as_python() -> None:
    pairs: list[tuple[Any, Any]] = [
        ({"kind": "rate_limited", "retry_after": 5}, RateLimited(retry_after=5)),
        ({"kind": "overloaded"}, Overloaded()),
        ({"kind": "scope_refused", "status": 403}, ScopeRefused(403)),
        ({"kind": "proxy_error"}, ProxyErrorPage()),
        ({"kind": "drop", "stall": 1}, Drop(stall=1)),
        (
            {"kind": "error", "type": "api_error", "headers": {"x-a": "1"}},
            Error("api_error", headers={"x-a": "1"}),
        ),
        (
            {
                "kind": "reply",
                "content": [
                    {"type": "thinking", "thinking": "t", "signature": "s"},
                    {"type": "text", "text": "Hi"},
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}},
                    {"type": "redacted_thinking", "data": "d"},
                ],
                "usage": {"input": 1, "output": 2},
                "split": [1, 2],
                "error_after": 3,
            },
            Reply(
                [
                    Thinking("t", "s"),
                    Text("Hi"),
                    ToolUse("t1", "f", {"a": 1}),
                    RedactedThinking("d"),
                ],
                usage=Usage(1, 2),
                split=(1, 2),
                error_after=3,
            ),
        ),
        ({"kind": "reply", "content": "plain"}, Reply([Text("plain")])),
    ]
    for as_json, as_python in pairs:
        assert parse_step(as_json) == as_python


@pytest.mark.parametrize(
    ("step", "complaint"),
    [
        ({"kind": "nope"}, "unknown step kind"),
        ({"retry_after": 1}, "unknown step kind"),
        ({"kind": "rate_limited", "retry_afterr": 1}, "retry_afterr"),
        ({"kind": "reply", "chunk": 0}, "chunk"),
        ({"kind": "reply", "split": "sometimes"}, "split"),
        ({"kind": "reply", "content": [{"type": "image"}]}, "image"),
        ({"kind": "reply", "content": [{"type": "tool_use", "id": "x"}]}, "tool_use"),
        ({"kind": "reply", "usage": {"input": -1}}, "usage.input"),
        ({"kind": "reply", "stall": "long"}, "stall"),
        ({"kind": "error", "status": 42}, "status"),
        ([1, 2], "object"),
    ],
)
def test_bad_steps_are_refused_with_a_reason(step: Any, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_step(step)


def test_default_deltas_are_a_few_words(fake: FakeProvider) -> None:
    text = "one two  three four five six seven\neight nine ten eleven  "
    fake.script(KEY, [Reply([Text(text)])])
    with RawClient(fake.url) as client:
        sse = client.request("POST", "/v1/messages", anthropic_headers(), messages_body()).sse()
    deltas = [json.loads(d)["delta"]["text"] for e, d in sse if e == "content_block_delta"]
    assert "".join(deltas) == text
    assert [len(d.split()) for d in deltas] == [3, 3, 3, 2]


# -- control endpoints ---------------------------------------------------------------


def test_script_endpoint_takes_json_steps(fake: FakeProvider) -> None:
    script = {
        "key": NODE_KEY,
        "steps": [
            {"kind": "rate_limited", "retry_after": 7},
            {
                "kind": "reply",
                "content": [
                    {"type": "text", "text": "Hi "},
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": [1]}},
                ],
                "chunk": 2,
                "usage": {"input": 3, "output": 4, "cache_read": 5, "cache_write": 6},
            },
        ],
        "default": {"kind": "overloaded"},
    }
    response = post(fake, "/_fake/script", script)
    assert response.status_code == 200 and response.json()["ok"] is True
    with pytest.raises(anthropic.RateLimitError) as caught:
        ask(fake, NODE_KEY)
    assert caught.value.response.headers["retry-after"] == "7"
    message = ask(fake, NODE_KEY)
    assert message.content[0].text == "Hi "
    assert message.content[1].input == {"a": [1]}
    assert message.usage.cache_creation_input_tokens == 6
    for _ in range(2):
        with pytest.raises(anthropic.OverloadedError):
            ask(fake, NODE_KEY)


def test_bad_script_is_a_400_and_changes_nothing(fake: FakeProvider) -> None:
    fake.script(KEY, [Reply([Text("kept")])])
    response = post(fake, "/_fake/script", {"key": KEY, "steps": [{"kind": "reply", "chunk": -1}]})
    assert response.status_code == 400
    assert "chunk" in response.json()["error"]
    bad_json = httpx.post(fake.url + "/_fake/script", content=b"{nope", timeout=5)
    assert bad_json.status_code == 400
    assert post(fake, "/_fake/script", {"steps": []}).status_code == 400
    assert ask(fake, KEY).content[0].text == "kept"


def test_reset_returns_to_the_starting_scripts(fake: FakeProvider) -> None:
    assert post(fake, "/_fake/script", {"key": NODE_KEY, "steps": []}).status_code == 200
    fake.script(KEY, [Overloaded()])
    ask(fake, NODE_KEY)
    assert post(fake, "/_fake/reset", None).json() == {"ok": True}
    assert fake.requests == [] and fake.events == []
    with pytest.raises(anthropic.AuthenticationError):
        ask(fake, NODE_KEY)  # only scripted after start: gone
    assert ask(fake, KEY).content[0].text.startswith("Hello")  # Overloaded step gone too


def test_log_is_json_and_never_holds_a_full_key(fake: FakeProvider) -> None:
    post(fake, "/_fake/script", {"key": NODE_KEY, "steps": [{"kind": "invalid_key"}]})
    fake.script(KEY2, [])
    # Keys in every place a test might put them: headers, bodies, unknown keys.
    unknown = "sk-ant-api03-unknown-leaked-key-zzzz"
    for key in (KEY, KEY2, NODE_KEY, unknown):
        httpx.post(
            fake.url + "/v1/messages",
            headers={"authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"},
            json=messages_body(messages=[{"role": "user", "content": f"my key is {key}"}]),
            timeout=5,
        )
    response = httpx.get(fake.url + "/_fake/log", timeout=5)
    assert response.status_code == 200
    text = response.text
    log = response.json()
    for key in (KEY, KEY2, NODE_KEY, unknown):
        assert key not in text
        assert key[8:-4] not in text  # not even the middle
        assert fingerprint(key) in text
    assert [r["key"] for r in log["requests"]] == [
        "sk-ant-…0001",
        "sk-ant-…0002",
        "sk-ant-…cdef",
        "sk-ant-…zzzz",
    ]
    assert [r["step"] for r in log["requests"]] == [
        "reply",
        "reply",
        "error:authentication_error",
        "unknown_key",
    ]
    assert [r["status"] for r in log["requests"]] == [200, 200, 401, 401]
    assert log["events"][0] == {"name": "completed", "request": 0, "events_written": 10}
    assert log == fake.log()


def test_unknown_paths_are_404_and_recorded(fake: FakeProvider) -> None:
    response = httpx.post(fake.url + "/v1/v1/messages", json={}, timeout=5)
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
    assert httpx.get(fake.url + "/_fake/nothing", timeout=5).status_code == 404
    assert [(r.path, r.step) for r in fake.requests] == [("/v1/v1/messages", "not_found")]


def test_chunked_request_body_and_expect_continue(fake: FakeProvider) -> None:
    body = json.dumps(messages_body(stream=False)).encode()
    head = (
        "POST /v1/messages HTTP/1.1\r\nhost: fake\r\n"
        f"x-api-key: {KEY}\r\nanthropic-version: 2023-06-01\r\n"
        "transfer-encoding: chunked\r\nexpect: 100-continue\r\n\r\n"
    ).encode()
    with RawClient(fake.url) as client:
        client.sock.sendall(head)
        interim = client.read_response()
        assert interim.status == 100
        client.sock.sendall(
            b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (5, body[:5], len(body) - 5, body[5:])
        )
        response = client.read_response()
    assert response.status == 200
    assert response.json()["type"] == "message"
    assert fake.requests[0].body == messages_body(stream=False)


def test_wait_for_times_out(fake: FakeProvider) -> None:
    with pytest.raises(TimeoutError):
        fake.wait_for(lambda: fake.requests, timeout=0.2)


# -- the subprocess entry --------------------------------------------------------------


def start_process(*args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "sidecar.fake", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    # readline would block forever if the process printed nothing: bound it.
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=10):
            process.kill()
            pytest.fail("python -m sidecar.fake printed nothing within 10 s")
    line = process.stdout.readline()
    return process, json.loads(line)["url"]


@pytest.mark.parametrize(
    "sig", [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGINT, id="SIGINT")]
)
def test_subprocess_serves_scripts_until_signalled(tmp_path: Path, sig: signal.Signals) -> None:
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps([{"key": NODE_KEY, "steps": [{"kind": "overloaded"}]}]), encoding="utf-8"
    )
    process, url = start_process("--port", "0", "--script", str(script), "--key", KEY)
    try:
        assert url.startswith("http://127.0.0.1:")
        headers = {"x-api-key": NODE_KEY, "anthropic-version": "2023-06-01"}
        first = httpx.post(url + "/v1/messages", headers=headers, json=messages_body(), timeout=5)
        assert first.status_code == 529
        second = httpx.post(url + "/v1/messages", headers=headers, json=messages_body(), timeout=5)
        assert second.status_code == 200
        other = httpx.post(
            url + "/v1/messages", headers=anthropic_headers(KEY), json=messages_body(), timeout=5
        )
        assert other.status_code == 200
        # reset brings back the --script steps
        assert httpx.post(url + "/_fake/reset", timeout=5).status_code == 200
        again = httpx.post(url + "/v1/messages", headers=headers, json=messages_body(), timeout=5)
        assert again.status_code == 529
    finally:
        process.send_signal(sig)
        try:
            code = process.wait(timeout=5)
        finally:
            process.kill()
            process.communicate(timeout=5)
    assert code == 0


def test_subprocess_listens_on_another_loopback_address_only() -> None:
    """--host 127.0.0.2: the VS Code e2e's browser opens it directly (code-server proxies
    127.0.0.1); an address other machines could reach is refused."""
    process, url = start_process("--host", "127.0.0.2", "--key", KEY)
    try:
        assert url.startswith("http://127.0.0.2:")
        reply = httpx.post(
            url + "/v1/messages", headers=anthropic_headers(KEY), json=messages_body(), timeout=5
        )
        assert reply.status_code == 200
    finally:
        process.terminate()
        process.communicate(timeout=5)
    for host in ("0.0.0.0", "192.0.2.1", "example.com"):
        result = subprocess.run(
            [sys.executable, "-m", "sidecar.fake", "--host", host],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert result.returncode == 2, host
        assert "not a loopback address" in result.stderr
        assert result.stdout == ""


def test_subprocess_rejects_a_bad_script_file(tmp_path: Path) -> None:
    script = tmp_path / "bad.json"
    script.write_text('{"key": "k", "steps": [{"kind": "nope"}]}', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "sidecar.fake", "--script", str(script)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 2
    assert "unknown step kind" in result.stderr
    assert result.stdout == ""


def test_entry_point_is_import_light() -> None:
    code = (
        "import sys, sidecar.fake.__main__\n"
        "heavy = {'httpx', 'httpx2', 'anthropic', 'pydantic', 'pygls', 'lsprotocol', 'attrs',"
        " 'cattrs', 'platformdirs', 'filelock'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=10, check=True
    )
    assert result.stdout.strip() == "[]"
