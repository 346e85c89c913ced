"""sidecar.rotation.classify: failure classes, reset headers, error bodies, backoff."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.rotation import classify as classify_module
from sidecar.rotation.classify import (
    Failure,
    FailureClass,
    backoff_seconds,
    classify,
    parse_failure,
    retry_at,
)

RL = FailureClass.RATE_LIMIT
AUTH = FailureClass.AUTH
SCOPE = FailureClass.SCOPE
REQ = FailureClass.REQUEST

# 2026-01-01T00:00:00Z
NOW = 1_767_225_600.0

CLAUDE_CODE_ONLY = (
    "This credential is only authorized for use with Claude Code and cannot be used "
    "for other API requests."
)
THIRD_PARTY = (
    "Third-party apps now draw from your extra usage, not your plan limits. "
    "Add extra usage to continue."
)


def test_now_is_what_the_literals_below_assume() -> None:
    assert datetime(2026, 1, 1, tzinfo=UTC).timestamp() == NOW


def test_public_api_is_exactly_the_documented_one() -> None:
    assert sorted(classify_module.__all__) == [
        "Failure",
        "FailureClass",
        "GATEWAY_REFUSAL_ADVICE",
        "GATEWAY_REFUSAL_HEADER",
        "backoff_seconds",
        "classify",
        "parse_failure",
        "retry_at",
    ]


def test_wire_values() -> None:
    assert {c.name: c.value for c in FailureClass} == {
        "RATE_LIMIT": "rateLimit",
        "AUTH": "auth",
        "SCOPE": "scope",
        "REQUEST": "request",
    }


# --- classify: the table in docs/architecture.md------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "message", "expected"),
    [
        # rate limit: statuses
        (429, None, None, RL),
        (529, None, None, RL),
        (429, "rate_limit_error", "Number of request tokens has exceeded your limit.", RL),
        (529, "overloaded_error", "Overloaded", RL),
        # rate limit: types, whatever the status
        (None, "rate_limit_error", None, RL),
        (None, "overloaded_error", "Overloaded", RL),  # mid-stream SSE error event
        (400, "rate_limit_exceeded", None, RL),
        (400, "insufficient_quota", None, RL),
        (400, "RESOURCE_EXHAUSTED", None, RL),  # Google, upper case
        (500, "resource_exhausted", None, RL),
        # rate limit: messages, case-insensitive
        (400, None, "Rate limit reached for gpt-4o", RL),
        (400, None, "rate_limit hit", RL),
        (400, None, "Too Many Requests", RL),
        (400, None, "You exceeded your current QUOTA", RL),
        (400, None, "Resource exhausted (e.g. check quota).", RL),
        (503, None, "The server is overloaded, try later", RL),
        (400, None, "Your credit balance is too low to access the Anthropic API.", RL),
        # auth
        (401, None, None, AUTH),
        (401, "invalid_request_error", "whatever", AUTH),
        (None, "authentication_error", "invalid x-api-key", AUTH),
        (400, "invalid_api_key", None, AUTH),
        (400, None, "Invalid API key", AUTH),
        (400, None, "invalid x-api-key", AUTH),
        (400, None, "Incorrect API key provided: sk-abc***wxyz.", AUTH),
        (400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", AUTH),
        # scope
        (400, "invalid_request_error", CLAUDE_CODE_ONLY, SCOPE),
        (403, "permission_error", CLAUDE_CODE_ONLY, SCOPE),
        # "Third-party apps now draw from your extra usage": out of credit (issue 15)
        (400, "invalid_request_error", THIRD_PARTY, RL),
        (403, None, "Third party usage of this credential is not permitted", SCOPE),
        (400, None, "THIRD-PARTY APPLICATIONS are not allowed", SCOPE),
        (None, None, CLAUDE_CODE_ONLY.upper(), SCOPE),
        # request
        (400, "invalid_request_error", "max_tokens: must be at most 8192", REQ),
        (404, "not_found_error", "model: claude-nope", REQ),
        (413, "request_too_large", "Request exceeds the maximum allowed size", REQ),
        (403, "permission_error", "Your API key does not have permission to use this model", REQ),
        (500, "api_error", "Internal server error", REQ),
        (502, None, "HTTP 502 (non-JSON body)", REQ),
        (503, None, "Service Unavailable", REQ),
        (None, None, None, REQ),
        (400, None, "", REQ),
        # a passing mention of a third party is not a scope refusal
        (400, None, "tool 'third_party' has an invalid schema", REQ),
    ],
)
def test_classify_table(
    status: int | None, error_type: str | None, message: str | None, expected: FailureClass
) -> None:
    assert classify(status, error_type, message) is expected


@pytest.mark.parametrize(
    ("status", "error_type", "message", "expected", "why"),
    [
        (429, "rate_limit_error", CLAUDE_CODE_ONLY, SCOPE, "scope wins over 429"),
        (429, None, THIRD_PARTY, RL, "extra usage is billing, whatever the status"),
        (401, "authentication_error", CLAUDE_CODE_ONLY, SCOPE, "scope keeps the key on disk"),
        (429, "authentication_error", "invalid api key", RL, "status before type"),
        (401, "rate_limit_error", "rate limit", AUTH, "status before type"),
        (400, "rate_limit_error", "invalid api key", RL, "type before message"),
        (400, "authentication_error", "rate limited", AUTH, "type before message"),
        (400, None, "invalid api key and quota exceeded", RL, "rate limit phrase first"),
        (403, "permission_error", None, REQ, "403 without scope words"),
        (403, "permission_error", "Request not allowed", REQ, "403 without scope words"),
        (500, None, None, REQ, "5xx returned as is"),
        (502, None, None, REQ, "5xx returned as is"),
        (503, None, None, REQ, "5xx returned as is"),
        (500, "overloaded_error", None, RL, "5xx that says overloaded"),
        (503, None, "Overloaded", RL, "5xx that says overloaded"),
        (529, None, None, RL, "529 is overload"),
    ],
)
def test_classify_precedence(
    status: int | None,
    error_type: str | None,
    message: str | None,
    expected: FailureClass,
    why: str,
) -> None:
    assert classify(status, error_type, message) is expected, why


# --- retry_at -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        # retry-after: seconds, int or float, or an HTTP date
        ({"retry-after": "30"}, NOW + 30),
        ({"Retry-After": "1.5"}, NOW + 1.5),
        ({"RETRY-AFTER": " 7 "}, NOW + 7),
        ({"retry-after": "Thu, 01 Jan 2026 00:02:00 GMT"}, NOW + 120),
        ({"retry-after": "Thursday, 01-Jan-26 00:02:00 GMT"}, NOW + 120),  # RFC 850
        # retry-after-ms
        ({"retry-after-ms": "250"}, NOW + 0.25),
        ({"Retry-After-Ms": "1500.5"}, NOW + 1.5005),
        # Anthropic standard limits: RFC 3339
        ({"anthropic-ratelimit-requests-reset": "2026-01-01T00:00:42Z"}, NOW + 42),
        ({"anthropic-ratelimit-tokens-reset": "2026-01-01T02:00:42+02:00"}, NOW + 42),
        ({"anthropic-ratelimit-input-tokens-reset": "2026-01-01T00:00:42.250Z"}, NOW + 42.25),
        (
            {"anthropic-ratelimit-output-tokens-reset": "2026-01-01T02:00:42.123456789+02:00"},
            NOW + 42.123456,
        ),
        ({"anthropic-ratelimit-tokens-reset": "2026-01-01t00:00:42z"}, NOW + 42),
        # Anthropic unified (subscription) limits: Unix seconds
        ({"anthropic-ratelimit-unified-reset": "1767229200"}, NOW + 3600),
        ({"anthropic-ratelimit-unified-5h-reset": "1767229200"}, NOW + 3600),
        ({"Anthropic-RateLimit-Unified-7d-Reset": "1767229200.5"}, NOW + 3600.5),
        # OpenAI-compatible: Go durations or bare seconds
        ({"x-ratelimit-reset-requests": "1s"}, NOW + 1),
        ({"x-ratelimit-reset-tokens": "6m0s"}, NOW + 360),
        ({"x-ratelimit-reset-tokens": "250ms"}, NOW + 0.25),
        ({"x-ratelimit-reset-requests": "20ms"}, NOW + 0.02),
        ({"x-ratelimit-reset-requests": "1h2m3.5s"}, NOW + 3723.5),
        ({"x-ratelimit-reset-tokens": "2m59.56s"}, NOW + 179.56),
        ({"x-ratelimit-reset-requests": "12"}, NOW + 12),
        ({"x-ratelimit-reset-requests": "0.5"}, NOW + 0.5),
        ({"X-RateLimit-Reset-Tokens-Usage-Based": "3s"}, NOW + 3),
    ],
)
def test_retry_at_formats(headers: Mapping[str, str], expected: float) -> None:
    result = retry_at(headers, NOW)
    assert result == pytest.approx(expected, abs=1e-6)


def test_retry_after_wins_over_full_replenish_resets() -> None:
    # A window's reset is when it is full again; retry-after is when this request would
    # be admitted, the shorter and right answer (issue 15, the goodput benchmark).
    headers = {
        "retry-after": "5",
        "retry-after-ms": "4000",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:10Z",
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": "2026-01-01T00:01:30Z",
    }
    assert retry_at(headers, NOW) == NOW + 5


def test_retry_at_latest_exhausted_window_wins() -> None:
    # Every window spent and no retry-after: usable once the last of them has reset.
    headers = {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:10Z",
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": "2026-01-01T00:01:30Z",
        "anthropic-ratelimit-output-tokens-remaining": "0",
        "anthropic-ratelimit-output-tokens-reset": "2026-01-01T00:00:20Z",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "1m",
        "content-type": "application/json",
    }
    assert retry_at(headers, NOW) == NOW + 90


def test_retry_after_beats_windows_not_known_to_be_spent() -> None:
    # retry-after is the provider's own statement; resets of windows whose state it
    # did not report are only a guess, never a longer wait than it asked for.
    headers = {
        "retry-after": "5",
        "retry-after-ms": "4000",
        "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:10Z",
        "anthropic-ratelimit-tokens-reset": "2026-01-01T00:01:30Z",
        "x-ratelimit-reset-tokens": "1m",
    }
    assert retry_at(headers, NOW) == NOW + 5


# --- retry_at: one window at a time (issue 11, item 10) -----------------------


def test_openai_a_spent_requests_window_does_not_take_the_token_windows_reset() -> None:
    # The headers of OpenAI's rate-limits guide ("Rate limits in headers":
    # platform.openai.com/docs/guides/rate-limits), with the requests window spent.
    # The 6-minute token reset belongs to a window with headroom.
    headers = {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-limit-tokens": "150000",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-remaining-tokens": "149984",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    assert retry_at(headers, NOW) == NOW + 1


def test_openai_a_spent_token_window_sets_the_cooldown() -> None:
    # Groq sends the same names (console.groq.com/docs/rate-limits), durations like 2m59.56s.
    headers = {
        "x-ratelimit-limit-requests": "14400",
        "x-ratelimit-limit-tokens": "18000",
        "x-ratelimit-remaining-requests": "14370",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-requests": "2m59.56s",
        "x-ratelimit-reset-tokens": "7.66s",
    }
    assert retry_at(headers, NOW) == pytest.approx(NOW + 7.66, abs=1e-6)


def test_anthropic_windows_with_headroom_do_not_set_the_cooldown() -> None:
    # docs.anthropic.com, "Rate limits" → "Response headers": one set per window,
    # reset as RFC 3339; retry-after on a 429 too.
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:12Z",
        "anthropic-ratelimit-tokens-limit": "80000",
        "anthropic-ratelimit-tokens-remaining": "72000",
        "anthropic-ratelimit-tokens-reset": "2026-01-01T00:00:59Z",
        "anthropic-ratelimit-input-tokens-limit": "40000",
        "anthropic-ratelimit-input-tokens-remaining": "36000",
        "anthropic-ratelimit-input-tokens-reset": "2026-01-01T00:00:59Z",
        "anthropic-ratelimit-output-tokens-limit": "16000",
        "anthropic-ratelimit-output-tokens-remaining": "16000",
        "anthropic-ratelimit-output-tokens-reset": "2026-01-01T00:00:59Z",
    }
    assert retry_at(headers, NOW) == NOW + 12
    assert retry_at({**headers, "retry-after": "13"}, NOW) == NOW + 13


def test_with_no_spent_window_the_shortest_unknown_reset_counts() -> None:
    headers = {
        "x-ratelimit-reset-requests": "20s",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    assert retry_at(headers, NOW) == NOW + 20


def test_windows_that_all_have_headroom_name_no_time() -> None:
    # A 429 whose windows all have room (a request bigger than what is left): the
    # headers do not say when; the body's hint or the backoff decides.
    headers = {
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-remaining-tokens": "1200",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    assert retry_at(headers, NOW) is None


# --- retry_at: the provider's Date (issue 11, item 12) ------------------------

# Provider clocks two hours ahead of ours, and one hour behind.
AHEAD = "Thu, 01 Jan 2026 02:00:00 GMT"
BEHIND = "Wed, 31 Dec 2025 23:00:00 GMT"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"date": AHEAD, "anthropic-ratelimit-requests-reset": "2026-01-01T02:00:30Z"}, NOW + 30),
        ({"Date": BEHIND, "anthropic-ratelimit-requests-reset": "2025-12-31T23:00:30Z"}, NOW + 30),
        ({"date": AHEAD, "anthropic-ratelimit-unified-reset": str(int(NOW) + 7200 + 60)}, NOW + 60),
        ({"date": BEHIND, "retry-after": "Wed, 31 Dec 2025 23:02:00 GMT"}, NOW + 120),
        # Durations do not depend on any clock.
        ({"date": AHEAD, "x-ratelimit-reset-requests": "20s"}, NOW + 20),
        ({"date": BEHIND, "retry-after": "30"}, NOW + 30),
        # A Date that does not parse is no clock at all.
        (
            {"date": "yesterday", "anthropic-ratelimit-tokens-reset": "2026-01-01T00:00:42Z"},
            NOW + 42,
        ),
    ],
)
def test_absolute_resets_are_read_against_the_providers_date(
    headers: Mapping[str, str], expected: float
) -> None:
    assert retry_at(headers, NOW) == pytest.approx(expected, abs=1e-6)


def test_retry_at_garbage_is_ignored_and_the_rest_still_counts() -> None:
    headers = {
        "retry-after": "soon",
        "retry-after-ms": "nan",
        "anthropic-ratelimit-requests-reset": "not a date",
        "anthropic-ratelimit-unified-reset": "inf",
        "x-ratelimit-reset-requests": "1y",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    assert retry_at(headers, NOW) == NOW + 360


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"content-type": "text/html", "x-request-id": "req_123"},
        {"retry-after": ""},
        {"retry-after": "1e999"},
        {"retry-after": "  "},
        {"retry-after-ms": "12ms"},
        {"x-ratelimit-reset-requests": "s"},
        {"x-ratelimit-reset-requests": "1_000"},
        {"anthropic-ratelimit-tokens-reset": "2026-13-45T99:99:99Z"},
        # limits that are reported but are not resets
        {"anthropic-ratelimit-tokens-remaining": "0", "x-ratelimit-remaining-tokens": "0"},
    ],
)
def test_retry_at_none_when_nothing_parses(headers: Mapping[str, str]) -> None:
    assert retry_at(headers, NOW) is None


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "0"},
        {"retry-after": "-30"},
        {"retry-after": "Wed, 31 Dec 2025 23:00:00 GMT"},
        {"anthropic-ratelimit-tokens-reset": "2025-12-31T23:59:00Z"},
        {"anthropic-ratelimit-unified-reset": "1700000000"},
        {"retry-after": "-5", "anthropic-ratelimit-requests-reset": "2020-01-01T00:00:00Z"},
    ],
)
def test_retry_at_past_clamps_to_now(headers: Mapping[str, str]) -> None:
    assert retry_at(headers, NOW) == NOW


def test_retry_at_unified_windows_that_still_allow_do_not_count() -> None:
    # A 429 from the 5-hour window: the 7-day window is reported too but is
    # "allowed", and must not park the key for a week.
    headers = {
        "anthropic-ratelimit-unified-status": "rejected",
        "anthropic-ratelimit-unified-reset": "1767229200",
        "anthropic-ratelimit-unified-5h-status": "rejected",
        "anthropic-ratelimit-unified-5h-reset": "1767229200",
        "anthropic-ratelimit-unified-7d-status": "allowed",
        "anthropic-ratelimit-unified-7d-reset": "1767830400",
        "anthropic-ratelimit-unified-7d_sonnet-status": "allowed_warning",
        "anthropic-ratelimit-unified-7d_sonnet-reset": "1767830400",
    }
    assert retry_at(headers, NOW) == NOW + 3600
    # Without status headers no window is known to be spent: the shortest reset.
    no_status = {k: v for k, v in headers.items() if not k.endswith("status")}
    assert retry_at(no_status, NOW) == NOW + 3600


def test_retry_at_accepts_any_mapping() -> None:
    class Headers(Mapping[str, str]):
        def __init__(self, items: dict[str, str]) -> None:
            self._items = items

        def __getitem__(self, key: str) -> str:
            return self._items[key]

        def __iter__(self) -> Iterator[str]:
            return iter(self._items)

        def __len__(self) -> int:
            return len(self._items)

    assert retry_at(Headers({"Retry-After": "3"}), NOW) == NOW + 3


@given(
    st.dictionaries(
        st.one_of(
            st.sampled_from(
                [
                    "retry-after",
                    "Retry-After",
                    "retry-after-ms",
                    "anthropic-ratelimit-requests-reset",
                    "anthropic-ratelimit-unified-reset",
                    "anthropic-ratelimit-unified-5h-reset",
                    "anthropic-ratelimit-unified-5h-status",
                    "x-ratelimit-reset-tokens",
                ]
            ),
            st.text(max_size=40),
        ),
        st.one_of(
            st.text(max_size=60),
            st.from_regex(r"[0-9hmsµu.\-+ ]{0,20}", fullmatch=True),
            st.floats(allow_nan=True, allow_infinity=True).map(str),
            st.integers().map(str),
        ),
        max_size=6,
    ),
    st.floats(min_value=0, max_value=4e9),
)
def test_retry_at_never_raises(headers: dict[str, str], now: float) -> None:
    result = retry_at(headers, now)
    assert result is None or result >= now


# --- parse_failure ------------------------------------------------------------


def _json(document: object) -> bytes:
    return json.dumps(document).encode()


def test_parse_anthropic_rate_limit() -> None:
    body = _json(
        {
            "type": "error",
            "error": {"type": "rate_limit_error", "message": "Number of requests exceeded."},
        }
    )
    headers = {
        "retry-after": "12",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:30Z",
    }
    failure = parse_failure(429, headers, body, NOW)
    assert attrs.evolve(failure, windows=()) == Failure(
        failure_class=RL,
        status=429,
        error_type="rate_limit_error",
        message="Number of requests exceeded.",
        retry_at=NOW + 12,
        billing=False,
    )
    (window,) = failure.windows
    assert (window.name, window.remaining, window.reset_at) == ("requests", 0, NOW + 30)
    assert not failure.account_wide  # an API key's limit: the model's, not the account's


def test_parse_anthropic_scope_at_403_and_400() -> None:
    for status, kind in ((403, "permission_error"), (400, "invalid_request_error")):
        body = {"type": "error", "error": {"type": kind, "message": CLAUDE_CODE_ONLY}}
        failure = parse_failure(status, {}, body, NOW)
        assert failure.failure_class is SCOPE
        assert failure.error_type == kind
        assert failure.message == CLAUDE_CODE_ONLY
        assert failure.retry_at is None


def test_parse_anthropic_mid_stream_overloaded() -> None:
    event = '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    failure = parse_failure(None, {}, event, NOW)
    assert (failure.failure_class, failure.status, failure.error_type, failure.message) == (
        RL,
        None,
        "overloaded_error",
        "Overloaded",
    )


def test_parse_anthropic_credit_balance_is_billing() -> None:
    message = (
        "Your credit balance is too low to access the Anthropic API. "
        "Please go to Plans & Billing to upgrade or purchase credits."
    )
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    failure = parse_failure(400, {}, body, NOW)
    assert failure.failure_class is RL
    assert failure.billing is True


def test_parse_openai_rate_limit_code_beats_bucket_type() -> None:
    body = _json(
        {
            "error": {
                "message": "Rate limit reached for gpt-4o on requests per min (RPM): Limit 3.",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
    )
    headers = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-remaining-tokens": "29000",
        "x-ratelimit-reset-requests": "20s",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    failure = parse_failure(429, headers, body, NOW)
    assert failure.failure_class is RL
    assert failure.error_type == "rate_limit_exceeded"
    assert failure.retry_at == NOW + 20  # the spent window's, not the token window's
    assert failure.billing is False


@pytest.mark.parametrize(
    "error",
    [
        {"message": "You exceeded your current quota.", "type": "insufficient_quota", "code": None},
        {"message": "You exceeded your current quota.", "type": "x", "code": "insufficient_quota"},
        # OpenAI's monthly spend cap.
        {
            "message": "Billing hard limit has been reached",
            "type": "invalid_request_error",
            "code": "billing_hard_limit_reached",
        },
    ],
)
def test_parse_openai_insufficient_quota_is_billing(error: dict[str, object]) -> None:
    failure = parse_failure(429, {}, {"error": error}, NOW)
    assert failure.failure_class is RL
    assert failure.billing is True


def test_parse_openai_invalid_api_key_in_code() -> None:
    body = {
        "error": {
            "message": "Incorrect API key provided: sk-proj-****wxyz.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    failure = parse_failure(401, {}, body, NOW)
    assert failure.failure_class is AUTH
    assert failure.error_type == "invalid_api_key"
    assert failure.billing is False


def test_parse_google_shape() -> None:
    body = [
        {
            "error": {
                "code": 429,
                "message": "Quota exceeded for quota metric 'Generate Content API requests'.",
                "status": "RESOURCE_EXHAUSTED",
            }
        }
    ]
    failure = parse_failure(429, {}, json.dumps(body), NOW)
    assert failure.failure_class is RL
    assert failure.error_type == "RESOURCE_EXHAUSTED"
    assert failure.billing is False  # a per-minute quota, not billing


def test_parse_bytes_and_str_agree() -> None:
    document = {"type": "error", "error": {"type": "not_found_error", "message": "model: x"}}
    text = json.dumps(document)
    from_bytes = parse_failure(404, {}, text.encode(), NOW)
    from_str = parse_failure(404, {}, text, NOW)
    from_mapping = parse_failure(404, {}, document, NOW)
    assert from_bytes == from_str == from_mapping
    assert from_bytes.failure_class is REQ


def test_parse_html_body_becomes_a_short_description() -> None:
    page = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>" + (
        "<p>cloudflare</p>" * 1000
    )
    failure = parse_failure(502, {"content-type": "text/html"}, page.encode(), NOW)
    assert failure.message == "HTTP 502 (non-JSON body)"
    assert failure.failure_class is REQ
    assert failure.error_type is None


def test_parse_html_rate_limit_from_a_proxy_still_rotates() -> None:
    failure = parse_failure(429, {"Retry-After": "5"}, b"<html>Too busy</html>", NOW)
    assert failure.failure_class is RL
    assert failure.retry_at == NOW + 5


def test_parse_plain_text_body_is_kept_short_on_one_line() -> None:
    failure = parse_failure(503, {}, b"Too Many Requests\nupstream: pool-7\n", NOW)
    assert failure.message == "HTTP 503: Too Many Requests upstream: pool-7"
    assert failure.failure_class is RL


@pytest.mark.parametrize("body", [None, b"", "", "   \n", b"\r\n"])
def test_parse_empty_body(body: bytes | str | None) -> None:
    failure = parse_failure(500, {}, body, NOW)
    assert failure.message == "HTTP 500 (empty body)"
    assert failure.failure_class is REQ
    assert failure.error_type is None
    assert failure.billing is False


def test_parse_empty_body_without_status() -> None:
    assert parse_failure(None, {}, None, NOW).message == "provider error (empty body)"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "HTTP 400 (no error message)"),
        ({"error": {}}, "HTTP 400 (no error message)"),
        (
            {"type": "error", "error": {"type": "invalid_request_error"}},
            "HTTP 400 (no error message)",
        ),
        ({"error": "bad things"}, "bad things"),
        ({"message": "top-level message"}, "top-level message"),
        ({"detail": "Not Found"}, "Not Found"),
        ("[1, 2, 3]", "HTTP 400 (unrecognised JSON body)"),
        ("42", "HTTP 400 (unrecognised JSON body)"),
        ({"error": {"message": 12}}, "12"),
        ({"error": {"message": None, "type": 5}}, "HTTP 400 (no error message)"),
    ],
)
def test_parse_missing_and_odd_fields(body: str | Mapping[str, object], message: str) -> None:
    failure = parse_failure(400, {}, body, NOW)
    assert failure.message == message
    assert failure.failure_class is REQ


def test_parse_huge_body_truncates_message() -> None:
    message = "x" * (5 * 1024 * 1024) + " rate limit"
    body = _json({"type": "error", "error": {"type": "api_error", "message": message}})
    assert len(body) > 5_000_000
    failure = parse_failure(500, {}, body, NOW)
    assert len(failure.message) == 500
    assert failure.message.endswith("…")
    # The phrase past the cut still classifies.
    assert failure.failure_class is RL


def test_parse_huge_non_json_body() -> None:
    failure = parse_failure(502, {}, b"z" * (5 * 1024 * 1024), NOW)
    assert failure.message.startswith("HTTP 502: zzz")
    assert len(failure.message) <= 500


def test_parse_invalid_utf8_and_deep_json_do_not_raise() -> None:
    assert parse_failure(400, {}, b"\xff\xfe{not json", NOW).failure_class is REQ
    deep = "[" * 100_000 + "]" * 100_000
    assert parse_failure(400, {}, deep, NOW).failure_class is REQ


def test_parse_message_is_the_providers_only() -> None:
    # Headers (even a credential-looking one) never leak into the message.
    headers = {"x-api-key": "sk-ant-api03-secret", "retry-after": "1"}
    failure = parse_failure(429, headers, b"", NOW)
    assert "sk-ant" not in failure.message
    assert "sk-ant" not in repr(failure)


def test_failure_is_frozen() -> None:
    failure = parse_failure(400, {}, None, NOW)
    with pytest.raises(AttributeError):
        failure.message = "changed"  # type: ignore[misc]


# --- backoff_seconds ----------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"), [(-3, 30), (0, 30), (1, 30), (2, 60), (3, 300), (4, 300), (50, 300)]
)
def test_backoff_is_a_capped_ladder(n: int, expected: float) -> None:
    assert backoff_seconds(n) == expected


@pytest.mark.parametrize(("n", "expected"), [(1, 5), (2, 10), (3, 20), (4, 30), (9, 30)])
def test_overloaded_backoff_is_seconds(n: int, expected: float) -> None:
    assert backoff_seconds(n, overloaded=True) == expected


@pytest.mark.parametrize(
    ("n", "expected"), [(0, 3600), (1, 3600), (2, 18000), (3, 86400), (99, 86400)]
)
def test_backoff_billing_ladder_and_cap(n: int, expected: float) -> None:
    assert backoff_seconds(n, billing=True) == expected


def test_backoff_huge_count_is_cheap_and_capped() -> None:
    assert backoff_seconds(10**12) == 300
    assert backoff_seconds(10**12, billing=True) == 86400


# --- billing by type or code, retry hints in the body (issue 11, item 11) -----

# OpenAI's ordinary per-minute 429, as its API sends it (quoted in countless bug
# reports, e.g. openai/openai-python#400): a rate limit whose text links the billing page.
OPENAI_RPM_MESSAGE = (
    "Rate limit reached for default-gpt-3.5-turbo in organization org-abc123 on requests "
    "per min. Limit: 3 / min. Please try again in 20s. Contact us through our help center "
    "at help.openai.com if you continue to have issues. Please add a payment method to "
    "your account to increase your rate limit. Visit https://platform.openai.com/account/"
    "billing to add a payment method."
)

# Gemini's 429 for a per-minute free-tier quota (ai.google.dev/gemini-api/docs/
# troubleshooting, google.rpc error model): it opens with OpenAI's billing sentence,
# and says when to retry in a RetryInfo detail. The OpenAI-compatible endpoint wraps
# it in a one-element array.
GEMINI_429 = [
    {
        "error": {
            "code": 429,
            "message": (
                "You exceeded your current quota, please check your plan and billing details. "
                "For more information on this error, head to: https://ai.google.dev/gemini-api/"
                "docs/rate-limits.\n* Quota exceeded for metric: generativelanguage.googleapis"
                ".com/generate_content_free_tier_requests, limit: 10, model: gemini-2.5-flash\n"
                "Please retry in 21.4s."
            ),
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "20s"},
            ],
        }
    }
]


def test_an_ordinary_429_linking_the_billing_page_is_a_rate_limit() -> None:
    body = {
        "error": {
            "message": OPENAI_RPM_MESSAGE,
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    failure = parse_failure(429, {}, body, NOW)
    assert failure.failure_class is RL
    assert failure.billing is False
    # No header said when: the message's "try again in 20s" does.
    assert failure.retry_at == NOW + 20


def test_gemini_per_minute_quota_is_not_billing_and_its_retry_info_counts() -> None:
    failure = parse_failure(429, {}, json.dumps(GEMINI_429), NOW)
    assert failure.failure_class is RL
    assert failure.billing is False
    assert failure.retry_at == NOW + 20  # RetryInfo before the message's 21.4 s


def test_a_header_beats_the_bodys_hint() -> None:
    body = {"error": {"message": OPENAI_RPM_MESSAGE, "code": "rate_limit_exceeded"}}
    failure = parse_failure(429, {"retry-after": "3"}, body, NOW)
    assert failure.retry_at == NOW + 3


@pytest.mark.parametrize(
    ("message", "seconds"),
    [
        ("Please try again in 20s.", 20),
        ("Please try again in 6m0s.", 360),
        ("Please try again in 120ms.", 0.12),
        ("Please try again in 7m12.768s. Visit https://console.groq.com/docs", 432.768),
        ("Please retry in 20.532994235s.", 20.532994235),
        ("Too many requests, try again in 30 seconds", 30),
        ("Try again after 2 minutes.", 120),
        ("Please try again in 99999h.", 86400),  # a day at most, from prose
        ("Please try again later.", None),
        ("retry in a moment", None),
    ],
)
def test_retry_hints_in_messages(message: str, seconds: float | None) -> None:
    failure = parse_failure(429, {}, {"error": {"message": message}}, NOW)
    expected = None if seconds is None else pytest.approx(NOW + seconds, abs=1e-6)
    assert failure.retry_at == expected


@pytest.mark.parametrize(
    ("status", "body"),
    [
        # Anthropic, API key out of credit (docs.anthropic.com "Errors"; a 400).
        (
            400,
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "message": "Your credit balance is too low to access the Anthropic API. "
                    "Please go to Plans & Billing to upgrade or purchase credits.",
                },
            },
        ),
        # Anthropic subscription out of extra usage (anthropics/claude-code#45035).
        (
            400,
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "message": "You're out of extra usage. Add more at claude.ai/settings/usage "
                    "and keep going.",
                },
            },
        ),
        # OpenRouter out of credits: 402 (openrouter.ai/docs/api-reference/errors).
        (
            402,
            {
                "error": {
                    "code": 402,
                    "message": "Insufficient credits. Add more using https://openrouter.ai/credits",
                }
            },
        ),
    ],
)
def test_exhausted_balances_are_billing(status: int, body: Mapping[str, object]) -> None:
    failure = parse_failure(status, {}, body, NOW)
    assert failure.failure_class is RL
    assert failure.billing is True


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        # "billing" in passing is neither a rate limit nor billing.
        (400, "Invalid image. See https://platform.openai.com/account/billing for limits", REQ),
        (403, "Enable billing on project 1234 to use this model", REQ),
        # A rate limit that mentions billing is a plain rate limit.
        (429, "Please check your plan and billing details.", RL),
    ],
)
def test_the_word_billing_alone_decides_nothing(
    status: int, message: str, expected: FailureClass
) -> None:
    failure = parse_failure(status, {}, {"error": {"message": message}}, NOW)
    assert failure.failure_class is expected
    assert failure.billing is False
