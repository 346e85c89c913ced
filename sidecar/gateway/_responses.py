"""OpenAI's Responses API events, read on the side: the gateway's own, not the sidecar's.

The sidecar never sends a Responses request, so unlike :class:`AnthropicParser` and
:class:`OpenAIParser` this parser yields only what the gateway's watch needs to decide
(:class:`~sidecar.gateway._events.StreamWatch`): that the answer has begun (an output
delta, or a finished item), that an ``error`` event or ``response.failed`` came instead
(the rotation's failure, as for any error body), the usage of ``response.completed``,
and the end. Tools that send these: opencode's built-in ``openai`` provider, OpenAI's
Codex CLI, the SDKs' ``responses.create``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from sidecar.providers import Delta, TextDelta, UpstreamFailure, Usage, UsageDelta
from sidecar.providers._errors import malformed_stream, stream_ended_early
from sidecar.providers._openai import usage_from_openai
from sidecar.rotation.classify import parse_failure

__all__ = ["ResponsesParser", "responses_usage"]

# The answer has begun: text, reasoning or a tool call's arguments, or a whole item.
_CONTENT_SUFFIXES = (".delta", ".output_item.done")
_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def responses_usage(usage: Mapping[str, Any]) -> Usage:
    """Responses' usage (``input_tokens`` with the cached ones inside) as ours."""
    details = usage.get("input_tokens_details")
    return usage_from_openai(
        {
            "prompt_tokens": usage.get("input_tokens"),
            "completion_tokens": usage.get("output_tokens"),
            "prompt_tokens_details": details if isinstance(details, Mapping) else {},
        }
    )


class ResponsesParser:
    def __init__(self, secret: str = "") -> None:
        self._secrets = [secret] if secret else []
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def _failure(self, error: Mapping[str, Any]) -> UpstreamFailure:
        # In an error body's shape, so that the rotation reads it as it reads any other.
        body = {"error": {"type": error.get("type") or error.get("code"), **error}}
        failure = parse_failure(None, {}, body, now=time.time(), secrets=self._secrets)
        return UpstreamFailure(failure, mid_stream=True)

    def feed(self, event: str, data: str) -> list[Delta]:
        text = data.strip()
        if not text:
            return []
        try:
            doc = json.loads(text)
        except ValueError:
            raise malformed_stream("an event is not JSON") from None
        if not isinstance(doc, dict):
            raise malformed_stream("an event is not a JSON object")
        kind = str(doc.get("type") or event)
        response = doc.get("response")
        response = response if isinstance(response, Mapping) else {}
        if kind == "error":
            raise self._failure(doc)
        if kind == "response.failed" and isinstance(response.get("error"), Mapping):
            raise self._failure(response["error"])
        deltas: list[Delta] = []
        if kind.endswith(_CONTENT_SUFFIXES):
            deltas.append(TextDelta(""))  # only "it has begun": the bytes go out as they are
        if kind in _ENDS:
            self._done = True
            if isinstance(response.get("usage"), Mapping):
                deltas.append(UsageDelta(responses_usage(response["usage"])))
        return deltas

    def eof(self) -> list[Delta]:
        if not self._done:
            raise stream_ended_early()
        return []
