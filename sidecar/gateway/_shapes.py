"""Error bodies in each provider's own shape, so clients parse and back off as usual."""

from __future__ import annotations

import json

__all__ = ["error_body"]

# Anthropic's error types → OpenAI's (type, code).
_OPENAI = {
    "rate_limit_error": ("rate_limit_exceeded", "rate_limit_exceeded"),
    "authentication_error": ("invalid_request_error", "invalid_api_key"),
    "permission_error": ("invalid_request_error", "permission_denied"),
    "not_found_error": ("invalid_request_error", "not_found"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "invalid_request_error": ("invalid_request_error", None),
    "api_error": ("server_error", None),
    "billing_error": ("insufficient_quota", "insufficient_quota"),
}


def error_body(shape: str, error_type: str, message: str) -> bytes:
    """``error_type`` in Anthropic's names; rendered as Anthropic or OpenAI sends errors."""
    if shape == "anthropic":
        doc: dict[str, object] = {
            "type": "error",
            "error": {"type": error_type, "message": message},
        }
    else:
        kind, code = _OPENAI.get(error_type, ("invalid_request_error", None))
        doc = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return json.dumps(doc).encode()
