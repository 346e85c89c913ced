"""The providers' errors as they send them, by name: ``RateLimited()``,
``InvalidKey()``, ``OutOfCredit()``, … Each builds an :class:`~sidecar.fake._steps.Error`
step with the provider's own words, status and headers; tests and the JSON form
(``{"kind": "rate_limited"}``) ask for them by name.
"""

from __future__ import annotations

import json

from sidecar.fake._steps import Error, _non_negative

SCOPE_MESSAGE = (
    "This credential is only authorized for use with Claude Code and cannot be used "
    "for other API requests."
)

PROXY_PAGE = (
    "<html>\r\n<head><title>{status} Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>{status} Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def RateLimited(
    retry_after: float | None = 30, reset_in: float | None = None, message: str | None = None
) -> Error:
    """429 rate_limit_error with ``retry-after`` and reset headers (reset_in defaults to
    retry_after)."""
    if reset_in is None:
        reset_in = retry_after
    return Error("rate_limit_error", message, retry_after=retry_after, reset_in=reset_in)


def Overloaded(message: str | None = None) -> Error:
    """529 overloaded_error."""
    return Error("overloaded_error", message)


def InvalidKey(message: str | None = None) -> Error:
    """401 authentication_error, as for a revoked key."""
    return Error("authentication_error", message)


def ScopeRefused(status: int = 400) -> Error:
    """A subscription credential refused outside its client (400, or 403 as some do)."""
    kind = "permission_error" if status == 403 else "invalid_request_error"
    return Error(kind, SCOPE_MESSAGE, status=status)


# Anthropic's words for an account out of money (API keys) and for a subscription
# whose third-party use is paid from "extra usage" (anthropics/claude-code#45035).
CREDIT_MESSAGE = (
    "Your credit balance is too low to access the Anthropic API. Please go to Plans & "
    "Billing to upgrade or purchase credits."
)
EXTRA_USAGE_MESSAGE = (
    "Third-party apps now draw from your extra usage, not your plan limits. Add extra "
    "usage at claude.ai/settings/usage and keep going."
)


def OutOfCredit() -> Error:
    """Out of money: Anthropic's 400 "credit balance is too low"; on the OpenAI endpoints
    use ``Error("insufficient_quota")`` (429, code insufficient_quota)."""
    return Error("invalid_request_error", CREDIT_MESSAGE, status=400)


def ExtraUsageRequired() -> Error:
    """A subscription login whose third-party requests now draw from extra usage (400)."""
    return Error("invalid_request_error", EXTRA_USAGE_MESSAGE, status=400)


def ProxyErrorPage(status: int = 502) -> Error:
    """An HTML error page from a proxy in front of the API, not a JSON body."""
    return Error(
        "api_error",
        status=status,
        body=PROXY_PAGE.format(status=status),
        content_type="text/html",
    )


def GoogleQuotaExceeded(retry_delay: float = 20) -> Error:
    """Gemini's 429 for a per-minute quota, as its OpenAI-compatible endpoint sends it:
    a one-element array holding a google.rpc error whose message opens with "You
    exceeded your current quota, please check your plan and billing details" and whose
    RetryInfo detail says when to retry. No rate-limit headers at all."""
    _non_negative("retry_delay", retry_delay)
    delay = f"{retry_delay:g}s"
    message = (
        "You exceeded your current quota, please check your plan and billing details. "
        "For more information on this error, head to: "
        "https://ai.google.dev/gemini-api/docs/rate-limits.\n"
        "* Quota exceeded for metric: generativelanguage.googleapis.com/"
        "generate_content_free_tier_requests, limit: 10, model: gemini-2.5-flash\n"
        f"Please retry in {delay}."
    )
    document = [
        {
            "error": {
                "code": 429,
                "message": message,
                "status": "RESOURCE_EXHAUSTED",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                        "violations": [
                            {
                                "quotaMetric": "generativelanguage.googleapis.com/"
                                "generate_content_free_tier_requests",
                                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                            }
                        ],
                    },
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay},
                ],
            }
        }
    ]
    return Error(
        "rate_limit_error",
        status=429,
        body=json.dumps(document, indent=2),
        content_type="application/json; charset=UTF-8",
    )
