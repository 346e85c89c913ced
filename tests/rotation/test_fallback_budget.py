"""The pure rules of fallback and the daily budget, and their files in the home."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sidecar.errors import AllRateLimited, BudgetExceeded, InvalidParams, UpstreamError
from sidecar.rotation import budget as b
from sidecar.rotation.fallback import (
    Rule,
    Target,
    parse_target,
    reason_to_fall_back,
    rules_from_doc,
    rules_to_doc,
    targets_for,
)
from sidecar.rotation.routing import Routing
from sidecar.store import Store

SONNET = Rule(
    "anthropic", "claude-sonnet-4-5*", (Target("openrouter", "anthropic/claude-sonnet-4.5"),)
)


def test_the_first_matching_rule_decides_and_only_listed_targets_come_back() -> None:
    rules = [
        SONNET,
        Rule(
            "anthropic", "*", (Target("anthropic", "claude-haiku-4-5"), Target("openai", "gpt-5"))
        ),
    ]
    assert targets_for(rules, "anthropic", "claude-sonnet-4-5-20250929") == list(SONNET.to)
    assert targets_for(rules, "anthropic", "claude-opus-4-1") == list(rules[1].to)
    # Never back to what was asked, and nothing for a provider without a rule.
    assert targets_for(rules, "anthropic", "claude-haiku-4-5") == [Target("openai", "gpt-5")]
    assert targets_for(rules, "openai", "gpt-5") == []
    # A pattern is the whole id, case and all.
    assert targets_for([SONNET], "anthropic", "x-claude-sonnet-4-5") == []
    assert targets_for([SONNET], "anthropic", "CLAUDE-SONNET-4-5") == []


def test_the_document_round_trips_and_skips_what_it_cannot_use() -> None:
    doc = {"version": 1, "fallbacks": rules_to_doc([SONNET])}
    assert rules_from_doc(doc) == [SONNET]
    broken = {
        "fallbacks": [
            "nonsense",
            {"provider": "anthropic", "model": "*"},
            {"provider": "anthropic", "model": "*", "to": [{"provider": 1}, "x"]},
            rules_to_doc([SONNET])[0],
        ]
    }
    assert rules_from_doc(broken) == [SONNET]
    assert rules_from_doc({"fallbacks": "no"}) == [] == rules_from_doc(None)


def test_a_target_is_provider_colon_model() -> None:
    providers = ["anthropic", "openrouter"]
    assert parse_target("openrouter:a/b:beta", providers) == Target("openrouter", "a/b:beta")
    for bad in ("openrouter", "openrouter:", "openrouter: "):
        with pytest.raises(ValueError, match="PROVIDER:MODEL"):
            parse_target(bad, providers)
    with pytest.raises(ValueError, match="not a provider"):
        parse_target("nosuch:m", providers)


def test_only_a_provider_that_cannot_answer_falls_back() -> None:
    assert reason_to_fall_back(AllRateLimited("all cooling", {}, retry_at=0)) == "all cooling"
    assert reason_to_fall_back(BudgetExceeded("spent", {}, resets_at=0)) == "spent"
    assert reason_to_fall_back(UpstreamError("400 bad request")) is None
    assert reason_to_fall_back(InvalidParams("model", "empty")) is None


def test_the_day_resets_at_local_midnight() -> None:
    noon = time.mktime((2026, 12, 31, 12, 0, 0, 0, 0, -1))
    assert b.day_of(noon) == "2026-12-31"
    reset = b.next_reset(noon)
    assert time.localtime(reset)[:6] == (2027, 1, 1, 0, 0, 0)
    assert b.day_of(reset) == "2027-01-01" and b.day_of(reset - 1) == "2026-12-31"


def test_spend_adds_up_per_day_and_provider_and_keeps_a_week() -> None:
    doc: dict[str, object] = {}
    for day in range(1, 10):
        b.add_spend(doc, f"2026-12-{day:02d}", "anthropic", 1.0)
    b.add_spend(doc, "2026-12-09", "anthropic", 0.25)
    b.add_spend(doc, "2026-12-09", "openai", 2.0)
    assert b.spent_on(doc, "2026-12-09", "anthropic") == 1.25
    assert b.spent_on(doc, "2026-12-09", "openai") == 2.0
    assert list(doc["days"]) == [f"2026-12-{d:02d}" for d in range(3, 10)]  # type: ignore[call-overload]
    assert b.spent_on({"days": {"x": "broken"}}, "x", "anthropic") == 0.0


def test_the_budget_error_names_the_budget_the_spend_and_the_reset() -> None:
    now = time.mktime((2026, 12, 5, 21, 30, 0, 0, 0, -1))
    err = b.exceeded("anthropic", 5.0, 5.5, now)
    assert err.code == -32007
    assert err.message.startswith(
        "anthropic's daily budget of $5.00 is spent ($5.50 today); it resets at local"
        " midnight (00:00, in 2 h 30 min)."
    )
    assert "budget set --provider anthropic" in err.message and "fallback add" in err.message
    assert err.data == {
        "provider": "anthropic",
        "budget": 5.0,
        "spent": 5.5,
        "resetsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(err.resets_at)),
    }


def test_routing_files_are_private_atomic_and_a_corrupt_one_is_set_aside(home: Path) -> None:
    clock = [time.mktime((2026, 12, 5, 10, 0, 0, 0, 0, -1))]
    routing = Routing(Store(home), clock=lambda: clock[0])
    routing.record_spend("anthropic", 3.0)  # no budget: nothing written
    assert not (home / b.SPEND_FILE).exists()
    routing.set_budget("anthropic", 2.0)
    routing.check_budget("anthropic")
    routing.record_spend("anthropic", 1.5)
    routing.record_spend("anthropic", 0.5)
    with pytest.raises(BudgetExceeded):
        routing.check_budget("anthropic")
    clock[0] += 86400  # the next day starts at zero
    routing.check_budget("anthropic")
    for name in (b.BUDGETS_FILE, b.SPEND_FILE):
        assert oct(os.stat(home / name).st_mode & 0o777) == "0o600"
    (home / "fallbacks.json").write_text("{not json")
    routing.add_fallback("anthropic", "*", [Target("openai", "gpt-5")])
    assert routing.targets("anthropic", "any") == [Target("openai", "gpt-5")]
    assert [p.name.split(".corrupt-")[0] for p in home.glob("*.corrupt-*")] == ["fallbacks.json"]
    with pytest.raises(ValueError, match="positive"):
        routing.set_budget("anthropic", float("nan"))


def test_a_broken_budget_file_is_reported_not_silently_ignored(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    routing = Routing(Store(home))
    home.mkdir(mode=0o700)
    (home / b.BUDGETS_FILE).write_text('{"daily": ')
    assert routing.budgets() == {}
    assert "budgets.json" in routing.problems[b.BUDGETS_FILE]
    assert "ignored until fixed" in caplog.text
    routing.set_budget("anthropic", 1.0)  # rewrites it: the broken one is set aside
    assert routing.budgets() == {"anthropic": 1.0} and not routing.problems


def test_status_and_doctor_name_a_broken_fallbacks_file(home: Path) -> None:
    from sidecar.store.health import problem_texts

    home.mkdir(mode=0o700)
    (home / "fallbacks.json").write_text("[1, 2]")
    (home / "fallbacks.json").chmod(0o600)
    [problem] = problem_texts(Store(home))
    assert "fallbacks.json" in problem and "ignored until fixed" in problem
