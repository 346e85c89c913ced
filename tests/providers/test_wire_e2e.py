"""Provider wire formats and rate-limit answers, as a user meets them (issue 11, 9-12).

Each test runs the real CLI against :mod:`sidecar.fake` speaking the provider's wire
format: ``llm-sidecar ask`` streams (text on stdout, thinking and log lines on stderr),
and ``llm-sidecar status --json`` shows when the rate-limited key comes back. Cooldown
ends are checked against the wall-clock times taken before the ask and after the
status, so the bound holds however slow the machine is.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.fake import (
    Error,
    FakeProvider,
    GoogleQuotaExceeded,
    Reply,
    Text,
    Thinking,
    Window,
)
from tests.cli.test_cli import run

ANSWER = Reply([Text("Forty-two.")])

# OpenAI's ordinary per-minute 429 message (quoted in many bug reports, e.g.
# openai/openai-python#400): a plain rate limit that links the billing page.
OPENAI_RPM_MESSAGE = (
    "Rate limit reached for gpt-4o-mini in organization org-abc123 on requests per min "
    "(RPM): Limit 3, Used 3, Requested 1. Please try again in 20s. Visit "
    "https://platform.openai.com/account/rate-limits to learn more. You can increase "
    "your rate limit by adding a payment method to your account at "
    "https://platform.openai.com/account/billing."
)

# Providers: their name, key prefix, base-URL variable and the suffix the fake serves.
PROVIDERS = {
    "anthropic": ("sk-ant-api03-", "ANTHROPIC", ""),
    "openai": ("sk-proj-", "OPENAI", "/v1"),
    "google": ("AIzaSy", "GEMINI", "/v1"),
    "mistral": ("mistral", "MISTRAL", "/v1"),
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


def env_for(provider: str, fake: FakeProvider, keys: list[str]) -> dict[str, str]:
    _, prefix, suffix = PROVIDERS[provider]
    return {f"{prefix}_API_KEYS": ",".join(keys), f"{prefix}_BASE_URL": fake.url + suffix}


def ask(home: Path, provider: str, env: dict[str, str], model: str | None = None) -> Any:
    args = ["ask", "--provider", provider]
    if model is not None or provider in ("google", "mistral"):
        args += ["--model", model or "some-model"]
    return run(home, *args, "What is the answer?", env=env)


def cooldown_of(home: Path, provider: str, env: dict[str, str]) -> dict[str, Any]:
    result = run(home, "status", "--json", "--provider", provider, env=env)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    credential: dict[str, Any] = status["providers"][0]["credentials"][0]
    # A whole-key rest (coolingDown, or outOfCredit for billing), or, for an API key's
    # per-model limit, a rest of the model the request asked for (issue 15).
    resting = credential["state"] in ("coolingDown", "outOfCredit")
    assert resting or credential["modelCooldowns"], credential
    return credential


def until_of(credential: dict[str, Any]) -> float:
    when = credential.get("cooldownUntil") or credential["modelCooldowns"][0]["until"]
    return dt.datetime.fromisoformat(when).timestamp()


def rotate_past(
    home: Path,
    fake: FakeProvider,
    make_key: Callable[..., str],
    provider: str,
    first_answer: Error,
) -> tuple[float, float, dict[str, Any]]:
    """Ask with two keys, the first answering ``first_answer``; the times before the
    ask and after the status, and the first key's status entry."""
    first, second = make_key(PROVIDERS[provider][0]), make_key(PROVIDERS[provider][0])
    fake.script(first, [first_answer])
    fake.script(second, [], default=ANSWER)
    env = env_for(provider, fake, [first, second])
    before = time.time()
    result = ask(home, provider, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Forty-two."
    credential = cooldown_of(home, provider, env)
    return before, time.time(), credential


def assert_cools_for(before: float, after: float, credential: dict[str, Any], s: float) -> None:
    # cooldownUntil has whole seconds; the fake rounds resets up to the next second.
    until = until_of(credential)
    assert before + s - 2 <= until <= after + s + 2, (until - before, credential)


# --- item 9: content as a list of parts ------------------------------------------


def test_mistral_thinking_and_text_parts_stream_as_thinking_and_text(
    home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    key = make_key("mistral")
    fake.script(
        key,
        [],
        default=Reply(
            [Thinking("First, recall the question. "), Text("Forty-two.")],
            content_parts=True,
            chunk=7,
        ),
    )
    result = ask(home, "mistral", env_for("mistral", fake, [key]), "magistral-medium-latest")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Forty-two."
    assert "First, recall the question. " in result.stderr  # ask shows thinking on stderr
    assert "answer is empty" not in result.stderr


def test_an_answer_with_nothing_in_it_is_not_a_silent_success(
    home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    key = make_key("mistral")
    fake.script(key, [], default=Reply([]))  # role chunk, finish_reason "stop", [DONE]
    result = ask(home, "mistral", env_for("mistral", fake, [key]))
    assert result.stdout.strip() == ""
    assert "answered some-model with no text, thinking or tool call" in result.stderr
    assert "the answer is empty" in result.stderr


# --- item 10: reset headers read per window ----------------------------------------


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_spent_window_sets_the_cooldown_not_a_window_with_headroom(
    home: Path, fake: FakeProvider, make_key: Callable[..., str], provider: str
) -> None:
    # The requests window is spent and resets in 30 s; the token window still has
    # room and resets in an hour. The key is back in 30 s.
    limited = Error(
        "rate_limit_error",
        reset_in=30,
        windows={"tokens": Window(remaining=149984, reset_in=3600, limit=150000)},
    )
    before, after, credential = rotate_past(home, fake, make_key, provider, limited)
    assert_cools_for(before, after, credential, 30)


# --- item 11: billing by type or code; the body's retry hint -------------------------


def test_a_429_linking_the_billing_page_is_a_rate_limit_with_the_bodys_wait(
    home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    # No rate-limit header at all: "try again in 20s" is the only statement of when.
    limited = Error("rate_limit_error", message=OPENAI_RPM_MESSAGE)
    before, after, credential = rotate_past(home, fake, make_key, "openai", limited)
    assert_cools_for(before, after, credential, 20)


def test_geminis_per_minute_quota_waits_for_its_retry_info(
    home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    before, after, credential = rotate_past(
        home, fake, make_key, "google", GoogleQuotaExceeded(retry_delay=25)
    )
    assert_cools_for(before, after, credential, 25)


def test_insufficient_quota_is_billing_a_long_cooldown(
    home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    before, after, credential = rotate_past(
        home, fake, make_key, "openai", Error("insufficient_quota")
    )
    assert_cools_for(before, after, credential, 3600)  # the billing backoff's first step


def test_anthropic_out_of_extra_usage_rotates_with_a_billing_cooldown(
    home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    # A 400 invalid_request_error (anthropics/claude-code#45035): not the request's fault.
    exhausted = Error(
        "invalid_request_error",
        "You're out of extra usage. Add more at claude.ai/settings/usage and keep going.",
    )
    before, after, credential = rotate_past(home, fake, make_key, "anthropic", exhausted)
    assert_cools_for(before, after, credential, 3600)


# --- item 12: the provider's Date ----------------------------------------------------


@pytest.mark.parametrize(
    "skew", [-2 * 3600, 24 * 3600], ids=["provider-clock-behind", "provider-clock-ahead"]
)
def test_a_skewed_clock_neither_zeroes_nor_stretches_the_cooldown(
    home: Path, fake: FakeProvider, make_key: Callable[..., str], skew: float
) -> None:
    # Anthropic's resets are RFC 3339 times on its own clock; its Date says what that
    # clock reads now. Behind: read naively the reset is long past (a 10 s backoff);
    # ahead: a day too late.
    limited = Error("rate_limit_error", reset_in=600, clock_skew=skew)
    before, after, credential = rotate_past(home, fake, make_key, "anthropic", limited)
    assert_cools_for(before, after, credential, 600)
