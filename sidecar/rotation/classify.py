"""Turn a provider's failure into the input of a rotation decision.

Pure and clock-free: every function takes what it needs (status, headers,
body, ``now``) and returns a value, so that the rotation pool, the engine and
the fake provider can share one reading of "what did the provider say" and
tests can pin it down exactly. No I/O and no HTTP library: this module is
imported at start-up, and editors spawn the sidecar often.

The classes (docs/architecture.md, "What a failure does", has the full table):

* ``RATE_LIMIT``: cool the credential down (until the provider's reset time,
  else :func:`backoff_seconds`), rotate, replay.
* ``AUTH``: refresh an OAuth credential once, else evict it.
* ``SCOPE``: the credential works but not for this client; skip it for this
  request, keep it on disk, tell the user to use an API key.
* ``REQUEST``: the request itself is at fault; hand the error back as is.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping

import attrs

from sidecar.fingerprints import redact
from sidecar.rotation.errorbody import Fields, body_retry_at, decode, read_body
from sidecar.rotation.headroom import Window, read_windows
from sidecar.rotation.resets import retry_at

__all__ = [
    "GATEWAY_REFUSAL_ADVICE",
    "GATEWAY_REFUSAL_HEADER",
    "Failure",
    "FailureClass",
    "backoff_seconds",
    "classify",
    "parse_failure",
    "retry_at",
]


# Sent by llm-sidecar's own gateway on the answers it makes itself (a missing token, a
# bad Host): a sidecar whose base URL points at the gateway must not take its 401 for
# the provider rejecting the key.
GATEWAY_REFUSAL_HEADER = "llm-sidecar-gateway"
GATEWAY_REFUSAL_ADVICE = (
    "this request reached the llm-sidecar gateway, not the provider: a base URL"
    " (ANTHROPIC_BASE_URL, OPENAI_BASE_URL, …) points at the gateway; unset it where the"
    " sidecar runs (the key was not used and stays in the pool)"
)


class FailureClass(enum.Enum):
    """What kind of failure a provider reported; the value goes on the wire and on disk."""

    RATE_LIMIT = "rateLimit"
    AUTH = "auth"
    SCOPE = "scope"
    REQUEST = "request"


@attrs.frozen
class Failure:
    """One provider failure, reduced to what rotation needs.

    ``retry_at`` is absolute epoch seconds (so it can be stored in the shared
    state file and compared by any process); ``billing`` marks an exhausted
    quota or credit balance, which warrants a far longer cooldown than a
    per-minute limit.
    """

    failure_class: FailureClass
    status: int | None
    error_type: str | None
    message: str
    retry_at: float | None
    billing: bool
    # The rate-limit windows the answer reported (sidecar.rotation.headroom): a 429's
    # windows say whether the limit is the model's or the whole account's.
    windows: tuple[Window, ...] = ()

    @property
    def overloaded(self) -> bool:
        """529 / overloaded_error: the provider is busy, which is not the key's fault."""
        return self.status == 529 or (self.error_type or "").strip().lower() == "overloaded_error"

    @property
    def account_wide(self) -> bool:
        """The failure concerns the whole credential, not one model: out of credit, an
        invalid key, or a subscription's unified (per-account) window."""
        return (
            self.billing
            or self.failure_class is not FailureClass.RATE_LIMIT
            or any(w.account for w in self.windows)
        )


# Long enough for any real provider message, short enough that a runaway body
# never ends up in a status bar, a log line or the state file.
_MAX_MESSAGE_CHARS = 500
_ELLIPSIS = "…"

# --- classification tables -------------------------------------------------

# A subscription credential refused outside its own client. Matched on the
# message only: the status (400 or 403) and type (invalid_request_error,
# permission_error) are the same as for ordinary request errors.
_SCOPE_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"only authorized for use with"),
    # "Third-party apps now draw from your extra usage…" and its variants. The
    # noun after "third party" keeps an unrelated mention (say, of a
    # third-party tool name in a validation message) from matching.
    re.compile(
        r"third[\s_-]?party\s+"
        r"(?:apps?|applications?|clients?|tools?|harness(?:es)?|integrations?|use|usage|access)\b"
    ),
)

_RATE_LIMIT_STATUSES = frozenset({429, 529})
_AUTH_STATUSES = frozenset({401})
# 402 Payment Required: OpenRouter ("Insufficient credits") and DeepSeek ("Insufficient
# Balance") say an account ran dry this way. Billing, so a rate limit with a long cooldown.
_BILLING_STATUSES = frozenset({402})

# OpenAI's codes for an account out of money: insufficient_quota (429, docs "Error codes")
# and billing_hard_limit_reached (400, a monthly spend cap). Only a type or code says
# this reliably: OpenAI's *ordinary* 429 message ends "…add a payment method… Visit
# https://platform.openai.com/account/billing", and Google's per-minute 429 opens
# "You exceeded your current quota, please check your plan and billing details", the
# very words of OpenAI's insufficient_quota message.
_BILLING_TYPES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})

_RATE_LIMIT_TYPES = frozenset(
    {
        "rate_limit_error",  # Anthropic 429
        "overloaded_error",  # Anthropic 529, also mid-stream
        "rate_limit_exceeded",  # OpenAI code
        "resource_exhausted",  # Google status
        *_BILLING_TYPES,
    }
)
_AUTH_TYPES = frozenset({"authentication_error", "invalid_api_key"})

# Billing exhaustion that Anthropic reports as a 400 invalid_request_error, so only its
# wording tells it from a bad request: "Your credit balance is too low to access the
# Anthropic API…" (API keys) and "You're out of extra usage. Add more at
# claude.ai/settings/usage and keep going." (subscriptions; anthropics/claude-code
# issues #45035, #45046). The credential is not invalid, merely unusable for a long
# while: a long cooldown and a rotation serve the user better than the error.
#
# "Third-party apps now draw from your extra usage, not your plan limits" is billing too
# (issue 15): the subscription works, but a third-party request would be paid from a
# balance the user must top up or allow; a long rest, never an eviction. It is checked
# before the scope patterns, which would otherwise read "third-party apps" as a refusal.
_BILLING_MESSAGES: tuple[re.Pattern[str], ...] = (
    re.compile(r"credit balance is too low"),
    re.compile(r"out of extra usage"),
    re.compile(r"draws?\s+from\s+(?:your\s+)?extra\s+usage"),
    re.compile(r"insufficient[\s_](?:quota|credits|balance)"),
)

_RATE_LIMIT_MESSAGES: tuple[re.Pattern[str], ...] = (
    re.compile(r"rate[\s_-]?limit"),
    re.compile(r"too many requests"),
    re.compile(r"quota"),
    re.compile(r"resource[\s_]exhausted"),
    re.compile(r"overloaded"),
    *_BILLING_MESSAGES,
)
_AUTH_MESSAGES: tuple[re.Pattern[str], ...] = (
    re.compile(r"invalid[\s_-]api[\s_-]key"),
    re.compile(r"invalid[\s_-]x-api-key"),
    re.compile(r"incorrect[\s_-]api[\s_-]key"),
    re.compile(r"api key not valid"),  # Google, which sends it as a 400
)


def _any_match(patterns: Iterable[re.Pattern[str]], text: str) -> bool:
    return any(p.search(text) for p in patterns)


def classify(status: int | None, error_type: str | None, message: str | None) -> FailureClass:
    """Classify a failure. The order of the checks is the contract:

    0. An out-of-credit message (billing), at any status: it may mention third-party
       apps, but the credential is not refused, only unpaid.
    1. Scope, at any status. A scope refusal arrives as 400 or 403 and would
       otherwise read as a request error; if it ever came with 401 or 429 it
       is still the more specific statement, and the safer reading: SCOPE
       keeps the credential on disk, where AUTH would evict it and a cooldown
       would only postpone the same refusal.
    2. Status: 429 and 529 are rate limits, 402 (payment required) too, with a
       billing cooldown; 401 is auth, whatever the body says.
    3. Error type (Anthropic ``error.type``, OpenAI ``type`` or ``code``,
       Google ``status``), rate limit before auth.
    4. Message phrases, case-insensitive, rate limit before auth: a wrong
       "rate limit" only cools a key down, a wrong "auth" evicts it.
    5. Anything else, including 403 permission_error and 5xx that do not say
       "overloaded", is the request's own failure.
    """
    text = (message or "").lower()
    kind = (error_type or "").strip().lower()

    if _any_match(_BILLING_MESSAGES, text):
        return FailureClass.RATE_LIMIT  # out of credit, billing (see _BILLING_MESSAGES)
    if _any_match(_SCOPE_PATTERNS, text):
        return FailureClass.SCOPE
    if status in _RATE_LIMIT_STATUSES or status in _BILLING_STATUSES:
        return FailureClass.RATE_LIMIT
    if status in _AUTH_STATUSES:
        return FailureClass.AUTH
    if kind in _RATE_LIMIT_TYPES:
        return FailureClass.RATE_LIMIT
    if kind in _AUTH_TYPES:
        return FailureClass.AUTH
    if _any_match(_RATE_LIMIT_MESSAGES, text):
        return FailureClass.RATE_LIMIT
    if _any_match(_AUTH_MESSAGES, text):
        return FailureClass.AUTH
    return FailureClass.REQUEST


def _is_billing(status: int | None, error_types: Iterable[str | None], message: str) -> bool:
    """Whether a rate limit is an exhausted balance: by status, type or code, and for
    Anthropic (whose type is a generic invalid_request_error) by its exact wording,
    never by a passing mention of "billing" or "quota"."""
    if status in _BILLING_STATUSES:
        return True
    if any((t or "").strip().lower() in _BILLING_TYPES for t in error_types):
        return True
    return _any_match(_BILLING_MESSAGES, message.lower())


# --- error bodies are read by sidecar.rotation.errorbody -----------------------


def _truncate(text: str) -> str:
    text = text.strip()
    if len(text) <= _MAX_MESSAGE_CHARS:
        return text
    return text[: _MAX_MESSAGE_CHARS - len(_ELLIPSIS)] + _ELLIPSIS


def _pick_type(fields: Fields) -> str | None:
    # OpenAI's "type" can be a bucket ("requests", "tokens",
    # "invalid_request_error") while "code" says what happened
    # (rate_limit_exceeded, invalid_api_key, insufficient_quota).
    # Report whichever one the classifier understands.
    known = _RATE_LIMIT_TYPES | _AUTH_TYPES
    for candidate in (fields.code, fields.error_type):
        if candidate is not None and candidate.strip().lower() in known:
            return candidate
    return fields.error_type or fields.code


def parse_failure(
    status: int | None,
    headers: Mapping[str, str],
    body: bytes | str | Mapping[str, object] | None,
    now: float,
    *,
    secrets: Iterable[str] = (),
) -> Failure:
    """Read a failed response (or a mid-stream ``error`` event, with ``status=None``).

    Never raises on a malformed body: the error path must always produce a
    decision. Providers echo the request's key in their messages: ``secrets``
    (the request's credential) are replaced by fingerprints before anything is
    cut to its display length, so that no piece of a key survives the cut.
    """
    secrets = tuple(secrets)
    if secrets and isinstance(body, bytes | str):
        body = redact(decode(body), secrets)
    fields, message = read_body(status, body)
    if secrets:  # a parsed event's fields (a Mapping body) were not redacted above
        message = redact(message, secrets)
        fields = fields._replace(
            error_type=fields.error_type and redact(fields.error_type, secrets),
            code=fields.code and redact(fields.code, secrets),
        )
    error_type = _pick_type(fields)
    # Classify on the full message: a phrase past the truncation point still counts.
    raw_message = fields.message or ""
    failure_class = classify(status, error_type, raw_message)
    if any(name.lower() == GATEWAY_REFUSAL_HEADER for name in headers):
        # Our own gateway refused the request, not a provider the key: a base URL points
        # at the gateway. Never the key's fault, so never a reason to evict it.
        failure_class, message = FailureClass.REQUEST, GATEWAY_REFUSAL_ADVICE
    billing = failure_class is FailureClass.RATE_LIMIT and _is_billing(
        status, (fields.error_type, fields.code), raw_message
    )
    # Headers first: they are the provider's machine-readable statement; the body's
    # hint is for hosts (Google, gateways) that put the wait only there.
    when = retry_at(headers, now)
    if when is None:
        when = body_retry_at(fields, now)
    return Failure(
        failure_class=failure_class,
        status=status,
        error_type=error_type,
        message=_truncate(message),
        retry_at=when,
        billing=billing,
        windows=read_windows(headers, now),
    )


# --- backoff --------------------------------------------------------------------

# Steady ladders, one rung per failure in a row, the last rung the cap. A rate limit
# with no reset: about 30 s, 1 min, 5 min (OpenClaw's users found a doubling from 10 s
# both too eager at first and too slow to settle). Overloaded (529) is the provider's
# trouble, not the key's: seconds. Out of credit does not come back in minutes: hours.
_RATE_LIMIT_LADDER = (30.0, 60.0, 300.0)
_OVERLOADED_LADDER = (5.0, 10.0, 20.0, 30.0)
_BILLING_LADDER = (3600.0, 5 * 3600.0, 24 * 3600.0)


def backoff_seconds(
    consecutive_failures: int, *, billing: bool = False, overloaded: bool = False
) -> float:
    """Cooldown when the provider named no reset time: the rung of a capped ladder.

    Rate limit 30 s, 1 min, 5 min (cap); overloaded 5, 10, 20, 30 s (cap); out of
    credit 1 h, 5 h, 24 h (cap). ``consecutive_failures`` counts this one; values
    below 1 count as 1.
    """
    ladder = (
        _BILLING_LADDER if billing else _OVERLOADED_LADDER if overloaded else _RATE_LIMIT_LADDER
    )
    return ladder[min(max(consecutive_failures, 1), len(ladder)) - 1]
