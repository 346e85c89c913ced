"""`llm-sidecar ask` and `llm-sidecar demo`, run as a user runs them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sidecar.fake import FakeProvider, RateLimited, Reply, Text
from tests.cli.test_cli import run


def test_demo_shows_streaming_and_rotation(home: Path) -> None:
    result = run(home, "demo")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for expected in (
        "status bar: 🔑 1/3",
        "status bar: 🔑 2/3 (rotated)",
        "status bar: 🔑 2/2 (rotated)",
        "thinking: ",
        "answer:   Rotation kept this answer flowing",
        'tool call: read_file({"path":"README.md"})',
        "3 attempts",
        "the rejected key is gone from pool.json",
        "demo succeeded",
    ):
        assert expected in out
    assert not home.exists()  # the demo used a home of its own


def test_ask_streams_to_stdout_and_notes_rotation_on_stderr(
    home: Path, make_key: Callable[..., str]
) -> None:
    first, second = make_key(), make_key()
    with FakeProvider() as fake:
        fake.script(first, [RateLimited(retry_after=60)])
        fake.script(second, [], default=Reply([Text("Forty-two.")]))
        result = run(
            home,
            "ask",
            "What is the answer?",
            env={"ANTHROPIC_API_KEYS": f"{first},{second}", "ANTHROPIC_BASE_URL": fake.url},
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Forty-two."
    assert "🔑 2/2 (rotated)" in result.stderr
    assert "2 attempt(s)" in result.stderr


def test_ask_without_credentials_says_how_to_add_one(home: Path) -> None:
    result = run(home, "ask", "hello")
    assert result.returncode == 1
    assert "key add" in result.stderr


def test_ask_needs_a_model_where_there_is_no_default(
    home: Path, make_key: Callable[..., str]
) -> None:
    result = run(home, "ask", "--provider", "groq", "hi", env={"GROQ_API_KEY": make_key("gsk_")})
    assert result.returncode == 1 and "--model" in result.stderr
