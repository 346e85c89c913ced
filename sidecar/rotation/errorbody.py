"""Reading a provider's error body, whatever shape it arrives in, into a few fields.

Unlike :mod:`~sidecar.rotation.classify`, which decides what a failure *is*, this only
extracts what the body says: the error type and code, the message, a wait the body
names (Google's ``RetryInfo``, "try again in 20s"). JSON of every provider's shape, JSON
cut short, a proxy's HTML page, plain text, nothing: it never raises.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import NamedTuple

from sidecar.rotation.resets import duration_seconds

__all__ = ["Fields", "body_retry_at", "decode", "read_body"]


def _as_str(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    # OpenAI-compatible hosts and Google sometimes send numeric codes.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _http_label(status: int | None) -> str:
    return f"HTTP {status}" if status is not None else "provider error"


class Fields(NamedTuple):
    # A NamedTuple, not attrs: attrs generates code at import time, and this
    # private record does not need it.
    error_type: str | None
    code: str | None
    message: str | None
    retry_delay: str | None = None  # Google's RetryInfo.retryDelay, e.g. "20s"


# Google's RetryInfo detail (google.rpc.RetryInfo, a protobuf Duration as JSON):
# {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "20s"}.
_RETRY_INFO_TYPE = "google.rpc.RetryInfo"


def _retry_delay(details: object) -> str | None:
    if not isinstance(details, list):
        return None
    for detail in details:
        if isinstance(detail, Mapping):
            kind = detail.get("@type")
            if isinstance(kind, str) and kind.endswith(_RETRY_INFO_TYPE):
                return _as_str(detail.get("retryDelay"))
    return None


# The wait a message names: OpenAI and Groq "Please try again in 20s." / "in 6m0s." /
# "in 120ms.", Google "Please retry in 20.532994235s.", and the spelled-out
# "try again in 30 seconds" of some gateways. "Try again later" names none.
_MESSAGE_DELAY = re.compile(
    r"\b(?:try|retry)(?:\s+again)?\s+(?:in|after)\s+"
    r"(?:(?P<go>(?:\d+(?:\.\d+)?(?:ms|s|m|h))+)(?![a-z])"
    r"|(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>milliseconds?|seconds?|secs?|minutes?|mins?)\b)"
)
_SPELLED_UNIT = {"milli": 1e-3, "sec": 1.0, "min": 60.0}
_BODY_HINT_CAP_S = 24 * 60 * 60.0


def _message_delay(message: str) -> float | None:
    match = _MESSAGE_DELAY.search(message.lower())
    if match is None:
        return None
    if match["go"] is not None:
        return duration_seconds(match["go"])
    scale = next(v for k, v in _SPELLED_UNIT.items() if match["unit"].startswith(k))
    return float(match["n"]) * scale


def body_retry_at(fields: Fields, now: float) -> float | None:
    """When the error body says to retry, for answers whose headers say nothing."""
    seconds = duration_seconds(fields.retry_delay) if fields.retry_delay else None
    if seconds is None and fields.message:
        seconds = _message_delay(fields.message)
    if seconds is None or seconds < 0:
        return None
    # Read out of prose, so less sure than a header: never more than a day (the longest
    # billing cooldown), whatever number a garbled message holds.
    return now + min(seconds, _BODY_HINT_CAP_S)


def _fields(document: object) -> Fields | None:
    """Pull type, code and message out of any of the providers' JSON shapes."""
    if isinstance(document, list) and len(document) == 1:
        # Google wraps its error object in a one-element array on some endpoints.
        document = document[0]
    if not isinstance(document, Mapping):
        return None
    error = document.get("error")
    if isinstance(error, Mapping):
        # Anthropic {"type":"error","error":{type,message}};
        # OpenAI {"error":{message,type,code}}; Google {"error":{code,message,status}}.
        error_type = _as_str(error.get("type")) or _as_str(error.get("status"))
        code = _as_str(error.get("code"))
        message = _as_str(error.get("message"))
        return Fields(error_type, code, message, _retry_delay(error.get("details")))
    # Proxies and gateways: {"error": "…"}, {"message": "…"}, {"detail": "…"}.
    message = _as_str(error) or _as_str(document.get("message")) or _as_str(document.get("detail"))
    top_type = _as_str(document.get("type"))
    if top_type == "error":
        top_type = None  # Anthropic's envelope tag, not an error type.
    return Fields(top_type, _as_str(document.get("code")), message)


def _looks_like_html(text: str) -> bool:
    head = text.lstrip()[:512].lower()
    return head.startswith("<") or "<html" in head or "<!doctype" in head


def decode(body: bytes | str) -> str:
    if isinstance(body, bytes):
        # Replacement rather than failure: a garbled body is still a failure
        # to classify, not a reason to raise from the error path.
        return body.decode("utf-8", errors="replace")
    return body


_JSON_STRING_FIELD = r'"{name}"\s*:\s*"((?:[^"\\]|\\.)*)'


def _json_string_field(text: str, name: str) -> str | None:
    match = re.search(_JSON_STRING_FIELD.format(name=name), text)
    if match is None:
        return None
    raw = match.group(1)
    try:
        value = json.loads(f'"{raw}"')
    except ValueError:
        value = raw
    return value if isinstance(value, str) and value.strip() else None


def _salvage(text: str) -> Fields | None:
    """Type and message from the start of a JSON error body that was cut short."""
    if not text.lstrip().startswith("{"):
        return None
    head = text[:16384]
    error_type = _json_string_field(head, "type")
    if error_type == "error":  # Anthropic's envelope tag: the inner type follows
        inner = head[head.find('"type"') + 6 :]
        error_type = _json_string_field(inner, "type")
    code = _json_string_field(head, "code")
    message = _json_string_field(head, "message")
    if message is None:  # a message cut off before its closing quote
        match = re.search(r'"message"\s*:\s*"((?:[^"\\]|\\.)*)$', head)
        message = match.group(1) if match and match.group(1).strip() else None
    if error_type is None and code is None and message is None:
        return None
    return Fields(error_type, code, message)


def read_body(
    status: int | None, body: bytes | str | Mapping[str, object] | None
) -> tuple[Fields, str]:
    """The parsed fields and a message fit for the user."""
    label = _http_label(status)
    if body is None:
        return Fields(None, None, None), f"{label} (empty body)"
    if isinstance(body, Mapping):
        document: object = body
    else:
        text = decode(body)
        if not text.strip():
            return Fields(None, None, None), f"{label} (empty body)"
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            salvaged = _salvage(text)
            if salvaged is not None:
                # JSON cut short (a huge body is read only in part): its leading fields.
                return salvaged, salvaged.message or f"{label} (truncated JSON body)"
            if _looks_like_html(text):
                # A proxy's error page: its markup is noise to the user.
                return Fields(None, None, None), f"{label} (non-JSON body)"
            # Plain text from a gateway ("Too Many Requests") is worth keeping,
            # on one line and short.
            first_line = " ".join(text.split())[:200]
            return Fields(None, None, first_line), f"{label}: {first_line}"
    fields = _fields(document)
    if fields is None:
        return Fields(None, None, None), f"{label} (unrecognised JSON body)"
    return fields, fields.message or f"{label} (no error message)"
