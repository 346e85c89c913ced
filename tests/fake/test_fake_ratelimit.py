"""The fake's rate limits against the providers' documented header semantics.

Anthropic (https://docs.anthropic.com/en/api/rate-limits): RPM/ITPM/OTPM are token
buckets, "continuously replenished up to your maximum limit"; ``*-remaining`` is what is
left, ``*-reset`` "the time when the rate limit will be fully replenished, provided in RFC
3339 format"; ``tokens-*`` show "the most restrictive limit currently in effect"; the
token counts left (``tokens-``, ``input-tokens-``, ``output-tokens-remaining``) are
"rounded to the nearest thousand", the requests left are exact; ``retry-after`` is "the
number of seconds to wait until you can retry the request. Earlier retries will fail."

OpenAI (https://platform.openai.com/docs/guides/rate-limits): ``x-ratelimit-reset-*`` is
"the time until the rate limit resets to its initial state", as a duration (``1s``,
``6m0s``); ``x-ratelimit-remaining-*`` are exact counts.

The limiter runs on an injected clock: no test waits for time to pass.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import httpx
import pytest
from fake_support import KEY, KEY2, OPENAI_KEY, anthropic_headers, messages_body

from sidecar.fake import FakeProvider, Overload, RateLimiter, RateLimits
from sidecar.fake._ratelimit import parse_limits, parse_spec

WALL = 1_800_000_000.0  # an epoch second, so RFC 3339 times are easy to check


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def wall(self) -> float:
        return WALL + self.t - 1000.0


def limiter(limits: RateLimits, overload: Overload | None = None) -> tuple[RateLimiter, Clock]:
    clock = Clock()
    return RateLimiter({None: limits}, overload, clock=clock, wall=clock.wall), clock


def rfc3339_seconds_from_now(value: str, clock: Clock) -> float:
    return datetime.fromisoformat(value).timestamp() - clock.wall()


def test_anthropic_requests_bucket_replenishes_continuously() -> None:
    rl, clock = limiter(RateLimits(requests=10, period=60))
    for expected in range(9, -1, -1):
        ok = rl.admit(KEY, "anthropic", 0, 0)
        headers = dict(ok.headers)
        assert ok.status == 200
        assert headers["anthropic-ratelimit-requests-limit"] == "10"
        assert headers["anthropic-ratelimit-requests-remaining"] == str(expected)
        # Fully replenished when the used requests have come back, at 10 per minute.
        reset = headers["anthropic-ratelimit-requests-reset"]
        assert rfc3339_seconds_from_now(reset, clock) == pytest.approx((10 - expected) * 6, abs=1)
    refused = rl.admit(KEY, "anthropic", 0, 0)
    assert refused.status == 429
    assert dict(refused.headers)["retry-after"] == "6"  # one request comes back in 6 s

    clock.t += 5.9  # "Earlier retries will fail", and each refused one costs a request
    assert rl.admit(KEY, "anthropic", 0, 0).status == 429
    clock.t += 6
    assert rl.admit(KEY, "anthropic", 0, 0).status == 200

    clock.t += 30  # continuous: half the minute gives back half the requests
    assert rl.snapshot(KEY)["requests"]["remaining"] == 5


def test_a_refused_request_costs_a_request_but_no_tokens() -> None:
    rl, clock = limiter(RateLimits(requests=5, input_tokens=10_000, output_tokens=5_000))
    ok = dict(rl.admit(KEY, "anthropic", 7_600, 100).headers)
    # Token counts left are rounded to the nearest thousand, as Anthropic writes them.
    assert ok["anthropic-ratelimit-input-tokens-remaining"] == "2000"  # 2,400 left
    assert ok["anthropic-ratelimit-output-tokens-remaining"] == "5000"  # 4,900 left
    # tokens-*: the most restrictive limit in effect, here the input tokens.
    assert ok["anthropic-ratelimit-tokens-limit"] == "10000"
    assert ok["anthropic-ratelimit-tokens-remaining"] == "2000"

    refused = rl.admit(KEY, "anthropic", 3_400, 100)
    assert refused.status == 429
    # 1,000 input tokens short at 10,000 a minute: 6 s.
    assert dict(refused.headers)["retry-after"] == "6"
    after = rl.snapshot(KEY)
    assert after["input_tokens"]["remaining"] == 2_400
    assert after["output_tokens"]["remaining"] == 4_900
    assert after["requests"]["remaining"] == 3  # one admitted, one refused
    clock.t += 6
    assert rl.admit(KEY, "anthropic", 3_400, 100).status == 200


def test_wait_says_when_a_request_would_be_admitted_and_charges_nothing() -> None:
    rl, clock = limiter(RateLimits(requests=2, input_tokens=10_000, period=60))
    assert rl.wait(KEY, 4_000, 0) == 0.0  # an unused key: full buckets
    assert rl.admit(KEY, "anthropic", 8_000, 0).status == 200
    # 2,000 input tokens left: 2,000 more come back in 12 s at 10,000 a minute.
    assert rl.wait(KEY, 4_000, 0) == pytest.approx(12)
    assert rl.wait(KEY, 1_000, 0) == 0.0
    # Asking twice charged nothing: the request is still admitted.
    assert rl.admit(KEY, "anthropic", 1_000, 0).status == 200
    # No request left: one comes back in 30 s, and the answer agrees with a real 429's.
    assert rl.wait(KEY, 0, 0) == pytest.approx(30)
    clock.t += 29.9
    assert rl.wait(KEY, 0, 0) == pytest.approx(0.1)
    clock.t += 0.1
    assert rl.wait(KEY, 0, 0) == 0.0
    assert rl.admit(KEY, "anthropic", 0, 0).status == 200
    assert rl.wait(KEY2, 0, 0) == 0.0  # another key's buckets are its own


def test_anthropic_token_counts_left_are_rounded_to_the_nearest_thousand() -> None:
    rl, _ = limiter(RateLimits(requests=1000, input_tokens=100_000, output_tokens=20_000))
    seen = []
    for used in (400, 200, 1_000, 98_000):  # 99,600 / 99,400 / 98,400 / 400 left
        headers = dict(rl.admit(KEY, "anthropic", used, 0).headers)
        seen.append(headers["anthropic-ratelimit-input-tokens-remaining"])
        assert headers["anthropic-ratelimit-requests-remaining"] == str(1000 - len(seen))
    assert seen == ["100000", "99000", "98000", "0"]
    # A bucket below 500 reads 0 though a small request still fits: the header is a
    # rounded hint, the bucket decides.
    assert rl.admit(KEY, "anthropic", 300, 0).status == 200
    # OpenAI's counts are exact.
    rl, _ = limiter(RateLimits(requests=10, tokens=10_000, refill="window"))
    headers = dict(rl.admit(OPENAI_KEY, "openai", 1_234, 0).headers)
    assert headers["x-ratelimit-remaining-tokens"] == "8766"


def test_openai_window_resets_to_its_initial_state() -> None:
    rl, clock = limiter(RateLimits(requests=3, tokens=1000, period=60, refill="window"))
    for _ in range(3):
        last = dict(rl.admit(OPENAI_KEY, "openai", 100, 50).headers)
        clock.t += 10
    assert last["x-ratelimit-limit-requests"] == "3"
    assert last["x-ratelimit-remaining-requests"] == "0"
    assert last["x-ratelimit-reset-requests"] == "40s"  # the window ends at t=60
    assert last["x-ratelimit-limit-tokens"] == "1000"
    assert last["x-ratelimit-remaining-tokens"] == "550"
    clock.t = 1000.0 + 59.98
    refused = rl.admit(OPENAI_KEY, "openai", 100, 50)
    assert refused.status == 429
    assert dict(refused.headers)["x-ratelimit-reset-requests"] == "20ms"
    assert dict(refused.headers)["retry-after"] == "1"
    clock.t = 1000.0 + 60
    fresh = dict(rl.admit(OPENAI_KEY, "openai", 100, 50).headers)
    assert fresh["x-ratelimit-remaining-requests"] == "2"
    assert fresh["x-ratelimit-reset-requests"] == "1m0s"


def test_scaled_periods_write_reset_times_to_the_millisecond() -> None:
    rl, clock = limiter(RateLimits(requests=12, period=6))
    reset = dict(rl.admit(KEY, "anthropic", 0, 0).headers)["anthropic-ratelimit-requests-reset"]
    assert reset.endswith(".500Z")  # one request of 12 per 6 s: full again in 0.5 s
    assert rfc3339_seconds_from_now(reset, clock) == pytest.approx(0.5)


def test_overload_bursts_refuse_every_key_and_charge_nothing() -> None:
    rl, clock = limiter(RateLimits(requests=10), Overload(every=10, length=1))
    clock.t += 0.5
    assert rl.admit(KEY, "anthropic", 0, 0).status == 529
    assert rl.admit(KEY2, "anthropic", 0, 0).status == 529
    clock.t += 1
    assert rl.admit(KEY, "anthropic", 0, 0).status == 200
    assert rl.snapshot(KEY)["requests"]["remaining"] == 9
    clock.t += 9
    assert rl.admit(KEY, "anthropic", 0, 0).status == 529


def test_every_response_carries_the_buckets_headers() -> None:
    limits = RateLimits(requests=2, input_tokens=10_000, output_tokens=2_000, period=60)
    with FakeProvider(keys=[KEY, OPENAI_KEY], limits=limits) as fake:
        with httpx.Client(base_url=fake.url, timeout=5) as client:
            streamed = client.post(
                "/v1/messages", json=messages_body(), headers=anthropic_headers()
            )
            whole = client.post(
                "/v1/messages", json=messages_body(stream=False), headers=anthropic_headers()
            )
            refused = client.post("/v1/messages", json=messages_body(), headers=anthropic_headers())
            openai = client.post(
                "/v1/chat/completions",
                json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]},
                headers={"authorization": f"Bearer {OPENAI_KEY}"},
            )
        assert streamed.status_code == whole.status_code == openai.status_code == 200
        assert streamed.headers["anthropic-ratelimit-requests-remaining"] == "1"
        assert whole.headers["anthropic-ratelimit-requests-remaining"] == "0"
        # The fake's usage estimate is what the input bucket was charged.
        used = whole.json()["usage"]["input_tokens"]
        left = 10_000 - 2 * used
        assert whole.headers["anthropic-ratelimit-input-tokens-remaining"] == str(round(left, -3))
        assert refused.status_code == 429
        assert refused.json()["error"]["type"] == "rate_limit_error"
        assert int(refused.headers["retry-after"]) >= 1
        assert "anthropic-ratelimit-requests-reset" in refused.headers
        assert openai.headers["x-ratelimit-remaining-requests"] == "1"
        assert [r.status for r in fake.requests] == [200, 200, 429, 200]

        # Reconfigured through the control endpoint: no limits for KEY from now on.
        reply = httpx.post(
            fake.url + "/_fake/ratelimit", json={"key": KEY, "limits": None}, timeout=5
        )
        assert reply.status_code == 200
        httpx.post(
            fake.url + "/_fake/ratelimit",
            json={"key": KEY2, "limits": {"requests": 1, "period": 6}},
            timeout=5,
        ).raise_for_status()
        assert fake.ratelimit.snapshot(KEY2)["requests"]["limit"] == 1
        bad = httpx.post(fake.url + "/_fake/ratelimit", json={"limits": {"rpm": 1}}, timeout=5)
        assert bad.status_code == 400


def test_limits_from_the_command_line() -> None:
    spec = parse_spec("requests=50,input-tokens=30000,period=6,refill=window")
    assert parse_limits(spec) == RateLimits(
        requests=50, input_tokens=30000, period=6, refill="window"
    )
    with pytest.raises(ValueError):
        parse_limits(parse_spec("requests=0"))
    bad = subprocess.run(
        [sys.executable, "-m", "sidecar.fake", "--rate-limit", "requests=-1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and "requests must be a positive number" in bad.stderr
