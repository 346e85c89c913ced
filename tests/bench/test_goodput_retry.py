"""The goodput benchmark's judge of retry times: replayed buckets, not a clock."""

from __future__ import annotations

import time
from typing import Any

from bench.goodput_retry import Told, judge, retry_moment
from sidecar.fingerprints import fingerprint

KEYS = ("sk-ant-api03-judge-key-00-00000000000000000", "sk-ant-api03-judge-key-01-00000000000001")
LIMITS = {"requests": 2, "period": 2.0}  # one request comes back every second
MODEL = "claude-sonnet-4-5"


def decision(t: float, key: int, status: int) -> list[Any]:
    return [int(t * 1e9), fingerprint(KEYS[key]), MODEL, 100, 100, status]


# Key 0 spends its two requests at t=10 and is refused at 10.2 (a refusal costs a
# request): its next one comes back at 11.2. Key 1 is never used.
SPENT = [decision(10, 0, 200), decision(10, 0, 200), decision(10.2, 0, 429)]


def told(at: float, retry: float | None) -> Told:
    return Told(at, retry, 100, 100)


def test_a_retry_time_is_right_when_a_request_then_is_admitted_and_not_a_second_before() -> None:
    judged = judge(SPENT, LIMITS, KEYS[:1], MODEL, [told(10.2, 11.3), told(10.2, 11.2)])
    assert (judged.right, judged.early, judged.late, judged.mismatches) == (2, 0, 0, 0)


def test_too_early_too_late_and_none_given_are_not_right() -> None:
    judged = judge(
        SPENT,
        LIMITS,
        KEYS[:1],
        MODEL,
        [told(10.2, 11.0), told(10.2, 12.5), told(10.2, None)],
    )
    # 11.0: still refused; 12.5: already admitted at 11.5; no time: not judged.
    assert (judged.right, judged.early, judged.late) == (0, 1, 1)


def test_any_of_the_users_keys_will_do() -> None:
    # With key 1 in the pool, capacity was there all along: a second's wait is too long.
    judged = judge(SPENT, LIMITS, KEYS, MODEL, [told(10.2, 10.4), told(10.2, 11.3)])
    assert (judged.right, judged.late) == (1, 1)


def test_a_replay_that_disagrees_with_the_fake_is_counted() -> None:
    # The fake said 200 to a third request at once: these limits cannot have been its.
    judged = judge([*SPENT[:2], decision(10.1, 0, 200)], LIMITS, KEYS, MODEL, [])
    assert judged.mismatches == 1


class _Response:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


class _HttpError(Exception):
    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("429")
        self.response = _Response(headers)


class _RpcError(Exception):
    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__("-32002")
        self.data = data


def test_retry_moments_of_each_kind_of_error() -> None:
    assert retry_moment(_HttpError({"retry-after": "3"}), 100.0) == 103.0
    assert retry_moment(_HttpError({}), 100.0) is None
    assert retry_moment(ValueError("no retry time"), 100.0) is None
    now = 1_800_000_000.0  # the wall clock when the error arrived, fixed: no clock read
    in_five = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 5))
    assert retry_moment(_RpcError({"retryAt": in_five}), 100.0, wall=lambda: now) == 105.0


class _NoDeployments(ValueError):
    cooldown_time = 5.0  # as LiteLLM's RouterRateLimitError carries it


def test_a_routers_cooldown_time_is_its_retry_time() -> None:
    assert retry_moment(_NoDeployments("Try again in 5 seconds"), 100.0) == 105.0
