"""A hostile provider: it echoes keys, points the sidecar at plain HTTP, floods it.

Each test drives the real sidecar from the outside (a raw stdio peer, or the CLI)
against :mod:`sidecar.fake` scripted with one of its hostile fault modes. What is
checked is what a user would see: no piece of a key in anything the sidecar writes,
a clear error, and a process that keeps answering. docs/security.md and
docs/reliability.md list these tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.fake import Error, FakeProvider, Reply, Step, Text, fingerprint
from sidecar.fingerprints import MIN_RUN
from tests.conftest import answer_text
from tests.reliability.support import (
    RawServer,
    error_code,
    is_response,
    peak_rss,
    raw_server,
)
from tests.server.conftest import server_env

# (provider, model, key prefix, base URL suffix) of each wire flavour.
FLAVOURS = {
    "anthropic": ("anthropic", "claude-sonnet-4-5", "sk-ant-api03-", ""),
    "openai": ("openai", "gpt-4o-mini", "sk-proj-", "/v1"),
}

# A provider's message is shown cut to 500 characters: the key starts just before the
# cut, so that a cut made before redaction leaves 29 of its characters in the message.
PAD = "x" * 470


def pieces_of(key: str, prefix: str, text: str) -> list[str]:
    """Every run of MIN_RUN characters of ``key``'s secret part that occurs in ``text``."""
    body = key[len(prefix) :]
    runs = (body[i : i + MIN_RUN] for i in range(len(body) - MIN_RUN + 1))
    return [run for run in runs if run in text]


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


def stream_params(provider: str, model: str) -> dict[str, Any]:
    return {
        "provider": provider,
        "model": model,
        "maxTokens": 32,
        "messages": [{"role": "user", "content": "hello"}],
    }


def echoing(where: str) -> Step:
    """A provider quoting the request's key just before the display cut."""
    message = f"{PAD} {{key}} is not allowed here"
    if where == "http-error":
        return Error("invalid_request_error", message, status=400, echo_key=True)
    # An error event inside a 200 stream, after the first text has gone out.
    return Reply(
        [Text("partial answer")],
        chunk=4,
        error_after=3,
        error_type="invalid_request_error",
        error_message=message,
        echo_key=True,
    )


# -- item 5: an echoed key is redacted before the message is cut --------------------------


@pytest.mark.parametrize("where", ["http-error", "error-event"])
@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_an_echoed_key_cut_at_the_display_length_leaves_no_piece_over_stdio(
    flavour: str,
    where: str,
    tmp_path: Path,
    home: Path,
    fake: FakeProvider,
    make_key: Callable[..., str],
) -> None:
    provider, model, prefix, suffix = FLAVOURS[flavour]
    key = make_key(prefix)
    fake.script(key, [], default=echoing(where))
    log_file = tmp_path / "sidecar.log"
    env = {f"{provider.upper()}_BASE_URL": fake.url + suffix}
    args = ["serve", "--log-file", str(log_file), "--log-level", "DEBUG"]
    with raw_server(home, env=env, args=args) as server:
        added = server.request("sidecar/keyAdd", {"provider": provider, "key": key})
        assert added["result"]["added"], added
        reply = server.request("sidecar/stream", stream_params(provider, model))
        assert error_code(reply) == -32004, reply
        message = reply["error"]["message"]
        assert PAD[:50] in message  # the provider's words are still shown...
        assert message.endswith("…")  # ...cut to their display length
        server.close()
        written = server.output_text() + log_file.read_text()
    assert not pieces_of(key, prefix, written), "a piece of the key reached the editor or log"
    assert len(fake.requests) == 1


@pytest.mark.parametrize("where", ["http-error", "error-event"])
@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_an_echoed_key_leaves_no_piece_on_asks_stderr(
    flavour: str, where: str, home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    provider, model, prefix, suffix = FLAVOURS[flavour]
    key = make_key(prefix)
    fake.script(key, [], default=echoing(where))
    env = {
        f"{provider.upper()}_API_KEY": key,
        f"{provider.upper()}_BASE_URL": fake.url + suffix,
    }
    result = subprocess.run(
        [sys.executable, "-m", "sidecar", "ask", "--provider", provider, "--model", model, "hi"],
        capture_output=True,
        text=True,
        env=server_env(home, env),
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert PAD[:50] in result.stderr
    assert not pieces_of(key, prefix, result.stdout + result.stderr)


@pytest.mark.parametrize("prefix", ["sk-ant-api03-", "sk-proj-", "gsk_", "xai-", ""])
def test_no_cut_anywhere_leaves_a_piece_of_an_echoed_key(
    prefix: str, make_key: Callable[..., str]
) -> None:
    """Wherever the key sits against the 500-character cut, and wherever a proxy cut the
    text before we saw it, no run of MIN_RUN of its characters survives."""
    from sidecar.fingerprints import fingerprint, redact
    from sidecar.rotation.classify import parse_failure

    key = make_key(prefix)
    public = fingerprint(key).partition("…")[0]  # what a fingerprint shows anyway
    for start in range(500 - len(key) - 5, 505):
        message = "x" * start + key + " was not accepted"
        for body in (
            json.dumps({"error": {"type": "invalid_request_error", "message": message}}),
            message,  # a gateway's plain text, cut to its first 200 characters
        ):
            failure = parse_failure(400, {}, body.encode(), now=0.0, secrets=[key])
            assert not pieces_of(key, public, failure.message), start
    for cut in range(len(key) + 1):
        text = f"head {key[:cut]} | {key[cut:]} tail"
        assert not pieces_of(key, public, redact(text, [key])), cut


def test_the_redacting_log_filter_catches_pieces_of_a_known_key(
    make_key: Callable[..., str],
) -> None:
    """A piece of a pooled key in any log line (here: the start of a key cut off by a
    proxy's own truncation) becomes a fingerprint, not only the whole key."""
    import logging

    from sidecar.fingerprints import _PREFIX
    from sidecar.logs import RedactingFilter

    # No vendor prefix: a Mistral-style key, unknown by shape. One whose random start
    # reads like a prefix ("QgtN_…", about 1 in 50) keeps those characters public, which
    # this test is not about: such a key is drawn again.
    key = next(k for k in iter(lambda: make_key(""), None) if not _PREFIX.match(k))
    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "upstream said: %s", (key[:12],), None
    )
    RedactingFilter(lambda: [key]).filter(record)
    assert key[:MIN_RUN] not in record.getMessage()
    assert key[-4:] in record.getMessage()  # shown by fingerprint


def test_status_after_an_echo_holds_no_piece_of_the_key(
    home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    """The provider's last complaint is kept for ``sidecar/status``: redacted there too."""
    key = make_key()
    fake.script(key, [], default=Error("rate_limit_error", f"{PAD} {{key}}", echo_key=True))
    with raw_server(home, env={"ANTHROPIC_BASE_URL": fake.url}) as server:
        server.request("sidecar/keyAdd", {"provider": "anthropic", "key": key})
        server.request("sidecar/stream", stream_params("anthropic", "claude-sonnet-4-5"))
        status = server.request("sidecar/status", {})
    assert not pieces_of(key, "sk-ant-api03-", json.dumps(status))


# -- item 6: plain http:// to another machine is refused ------------------------------------


def cleartext_env(fake: FakeProvider) -> dict[str, str]:
    """An OpenAI base URL on plain http:// to a host that is not this machine. The fake
    stands in as the HTTP proxy on the way there: what reaches it would have crossed the
    network in clear text (and no packet leaves the machine)."""
    return {
        "OPENAI_BASE_URL": "http://llm.example.net/v1",
        "HTTP_PROXY": fake.url,
        "http_proxy": fake.url,
        "NO_PROXY": "",
        "no_proxy": "",
    }


def test_a_plain_http_base_url_to_another_host_is_refused_over_stdio(
    home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    key = make_key("sk-proj-")
    fake.script(key, [], default=Reply([Text("sent in clear text")]))
    with raw_server(home, env=cleartext_env(fake)) as server:
        server.request("sidecar/keyAdd", {"provider": "openai", "key": key})
        reply = server.request("sidecar/stream", stream_params("openai", "gpt-4o-mini"))
        assert error_code(reply) == -32602, reply
        message = reply["error"]["message"]
        assert "OPENAI_BASE_URL" in message and "LLM_SIDECAR_ALLOW_INSECURE_HTTP=1" in message
        server.probe()  # still serving
    assert fake.requests == [], "the key went out over plain http"


def test_the_insecure_http_opt_in_lets_the_request_go(
    home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    key = make_key("sk-proj-")
    fake.script(key, [], default=Reply([Text("over a trusted proxy")]))
    env = {**cleartext_env(fake), "LLM_SIDECAR_ALLOW_INSECURE_HTTP": "1"}
    with raw_server(home, env=env) as server:
        server.request("sidecar/keyAdd", {"provider": "openai", "key": key})
        reply = server.request("sidecar/stream", stream_params("openai", "gpt-4o-mini"))
    assert "result" in reply and answer_text(reply["result"]) == "over a trusted proxy", reply


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080", "http://localhost:11434/v1", "http://[::1]:9/v1", "https://h"],
)
def test_loopback_and_https_base_urls_need_no_opt_in(url: str) -> None:
    from sidecar.providers import get_provider

    assert get_provider("openai", {"OPENAI_BASE_URL": url}).name == "openai"


def test_doctor_flags_a_plain_http_base_url(home: Path) -> None:
    from tests.cli.test_cli import run

    result = run(home, "doctor", env={"ANTHROPIC_BASE_URL": "http://10.1.2.3:8080/"})
    assert result.returncode == 1
    assert "problem: ANTHROPIC_BASE_URL is http://10.1.2.3:8080" in result.stdout
    assert "LLM_SIDECAR_ALLOW_INSECURE_HTTP=1" in result.stdout
    allowed = run(
        home,
        "doctor",
        env={"ANTHROPIC_BASE_URL": "http://10.1.2.3:8080/", "LLM_SIDECAR_ALLOW_INSECURE_HTTP": "1"},
    )
    assert allowed.returncode == 0, allowed.stdout
    assert "warning: ANTHROPIC_BASE_URL is http://10.1.2.3:8080" in allowed.stdout


# -- item 7: an endless line or a gzip bomb: bounded memory, no replay, still answering ----

MiB = 1024**2
# The server's address space (RLIMIT_AS): about 250 MiB of mappings at rest, thread
# stacks included, and room to spare. Without the limits a hostile stream took GBs; under
# this one an allocation fails inside the server instead of in the machine.
ADDRESS_SPACE = 1024 * MiB
# What the server may hold at its peak (VmHWM): about 40 MiB at rest, plus a few copies
# of one event at the default event limit (16 MiB).
RSS_CAP = 160 * MiB

# case: (the hostile answer after three real events, extra environment, the limit named)
HOSTILE: dict[str, tuple[Reply, dict[str, str], str]] = {
    "endless-line": (
        Reply([Text("partial")], endless_after=3),
        {},
        "LLM_SIDECAR_MAX_EVENT_BYTES",
    ),
    "gzip-bomb-one-line": (
        Reply([Text("partial")], endless_after=3, gzip=True),
        {},
        "LLM_SIDECAR_MAX_EVENT_BYTES",
    ),
    # Pings forever, each event small: only the response limit ends it (lowered, so the
    # test parses 8 MiB of pings, not 256).
    "gzip-bomb-of-events": (
        Reply([Text("partial")], endless_after=3, endless="events", gzip=True),
        {"LLM_SIDECAR_MAX_RESPONSE_BYTES": "8M"},
        "LLM_SIDECAR_MAX_RESPONSE_BYTES",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_a_hostile_stream_is_cut_with_bounded_memory_and_not_replayed(
    flavour: str, case: str, home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    provider, model, prefix, suffix = FLAVOURS[flavour]
    hostile, extra, limit_name = HOSTILE[case]
    key, spare = make_key(prefix), make_key(prefix)
    fake.script(key, [], default=hostile)
    fake.script(spare, [], default=Reply([Text("the spare key answered")]))
    env = {
        f"{provider.upper()}_BASE_URL": fake.url + suffix,
        # Only so that the old behaviour ends (in an error) rather than hangs.
        "LLM_SIDECAR_TOTAL_TIMEOUT": "60",
        **extra,
    }
    server = RawServer(home, env=env, memory_limit=ADDRESS_SPACE)
    try:
        server.initialize()
        for k in (key, spare):
            assert server.request("sidecar/keyAdd", {"provider": provider, "key": k})["result"]
        stream_id = server.next_id("stream")
        params = stream_params(provider, model)
        server.send(
            {"jsonrpc": "2.0", "id": stream_id, "method": "sidecar/stream", "params": params}
        )
        # The process keeps answering while it reads the hostile stream.
        seen = server.probe(timeout=30)
        replies = [m for m in seen if is_response(m, stream_id)]
        if not replies:
            replies = server.collect_until(lambda m: is_response(m, stream_id), 90)[-1:]
        reply = replies[0]
        peak = peak_rss(server.proc.pid)
        server.probe()
    finally:
        server.close()
    assert error_code(reply) == -32004, str(reply)[:300]
    data = reply["error"]["data"]
    assert data["type"] == "response_too_large" and data["status"] == 200, data
    assert limit_name in reply["error"]["message"]
    # One request: not replayed on the same key, not rotated to the spare one.
    assert [r.key for r in fake.requests] == [fingerprint(key)]
    assert peak < RSS_CAP, f"the sidecar's resident memory peaked at {peak / MiB:.0f} MiB"
