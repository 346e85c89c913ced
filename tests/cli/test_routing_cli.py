"""`llm-sidecar fallback`, `llm-sidecar budget`, and `ask` falling back, run as a user runs them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from sidecar.fake import FakeProvider, RateLimited, Reply, Text
from tests.cli.test_cli import run


def test_fallback_add_list_remove_keeps_order_in_a_private_file(home: Path) -> None:
    add = ("fallback", "add", "-p", "anthropic", "--model", "claude-sonnet-4-5*")
    assert run(home, *add, "--to", "openrouter:anthropic/claude-sonnet-4.5").returncode == 0
    assert run(home, *add, "--to", "openai:gpt-5", "--to", "openai:gpt-5").returncode == 0

    listed = run(home, "fallback", "list")
    assert listed.stdout.strip() == (
        "anthropic claude-sonnet-4-5*  →  openrouter:anthropic/claude-sonnet-4.5  →  openai:gpt-5"
    )
    path = home / "fallbacks.json"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    doc = json.loads(path.read_text())
    assert doc["fallbacks"][0]["to"][1] == {"provider": "openai", "model": "gpt-5"}

    remove = ("fallback", "remove", "-p", "anthropic", "--model", "claude-sonnet-4-5*")
    assert run(home, *remove, "--to", "openai:gpt-5").returncode == 0
    assert "openai" not in run(home, "fallback", "list").stdout
    assert run(home, *remove).returncode == 0
    assert "no fallbacks" in run(home, "fallback", "list").stdout
    gone = run(home, *remove)
    assert gone.returncode == 1 and "no fallback for anthropic claude-sonnet-4-5*" in gone.stderr


def test_fallback_add_refuses_a_target_it_cannot_use(home: Path) -> None:
    add = ("fallback", "add", "-p", "anthropic", "--model", "*")
    no_model = run(home, *add, "--to", "openrouter")
    assert no_model.returncode == 2 and "expected PROVIDER:MODEL" in no_model.stderr
    unknown = run(home, *add, "--to", "nosuch:model")
    assert unknown.returncode == 2 and "'nosuch' is not a provider" in unknown.stderr
    assert not (home / "fallbacks.json").exists()


def test_budget_set_show_clear(home: Path) -> None:
    assert run(home, "budget", "show").stdout.strip() == "no daily budgets"
    bad = run(home, "budget", "set", "-p", "anthropic", "--daily", "-3")
    assert bad.returncode == 1 and "positive number of dollars" in bad.stderr
    assert run(home, "budget", "set", "-p", "anthropic", "--daily", "5").returncode == 0
    shown = run(home, "budget", "show").stdout
    assert "anthropic  $0.00 of $5.00 today, $5.00 left; resets " in shown
    assert oct((home / "budgets.json").stat().st_mode & 0o777) == "0o600"
    assert run(home, "budget", "clear", "-p", "anthropic").returncode == 0
    assert run(home, "budget", "show").stdout.strip() == "no daily budgets"
    again = run(home, "budget", "clear", "-p", "anthropic")
    assert again.returncode == 1 and "has no daily budget" in again.stderr


def test_ask_prints_the_fallback_and_who_answered(home: Path, make_key: Callable[..., str]) -> None:
    ant, router = make_key(), make_key("sk-or-v1-")
    run(home, "fallback", "add", "-p", "anthropic", "--model", "*", "--to", "openrouter:or/model")
    with FakeProvider() as fake:
        fake.script(ant, [], default=RateLimited(retry_after=600))
        fake.script(router, [], default=Reply([Text("From the fallback.")]))
        result = run(
            home,
            "ask",
            "What is the answer?",
            env={
                "ANTHROPIC_API_KEY": ant,
                "OPENROUTER_API_KEY": router,
                "ANTHROPIC_BASE_URL": fake.url,
                "OPENROUTER_BASE_URL": fake.url + "/v1",
            },
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "From the fallback."
    assert "falling back to openrouter or/model: 1 anthropic credential tried" in result.stderr
    assert "answered by openrouter or/model" in result.stderr
