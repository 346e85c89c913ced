"""The Anthropic Messages API: request building and the SSE event parser."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import attrs
import httpx

from sidecar.credentials import Credential
from sidecar.providers._errors import UpstreamFailure, malformed_stream, stream_ended_early
from sidecar.providers._message import MessageBuilder
from sidecar.providers._sse import stream_deltas
from sidecar.providers._types import (
    Delta,
    MessageEnd,
    SignatureDelta,
    StreamRequest,
    TextDelta,
    ThinkingDelta,
    ToolInputDelta,
    ToolUseStart,
    ToolUseStop,
    Usage,
    UsageDelta,
)
from sidecar.rotation.classify import parse_failure

__all__ = ["ANTHROPIC_VERSION", "OAUTH_BETA", "AnthropicParser", "AnthropicProvider", "usage_of"]

ANTHROPIC_VERSION = "2023-06-01"
OAUTH_BETA = "oauth-2025-04-20"

# message_start / message_delta usage fields → ours. message_delta repeats only some of
# them (usually just output_tokens): only the fields present overwrite.
_USAGE_FIELDS = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_read_input_tokens": "cache_read_tokens",
    "cache_creation_input_tokens": "cache_write_tokens",
}


def _usage_changes(usage: Mapping[str, Any]) -> dict[str, int]:
    return {
        ours: value
        for theirs, ours in _USAGE_FIELDS.items()
        if (value := _int(usage.get(theirs))) is not None
    }


def usage_of(usage: Mapping[str, Any]) -> Usage:
    """A whole answer's ``usage`` object as ours (a count it lacks is 0)."""
    return Usage(**_usage_changes(usage))


def build_headers(credential: Credential) -> dict[str, str]:
    headers = {"anthropic-version": ANTHROPIC_VERSION}
    if credential.kind == "api_key":
        headers["x-api-key"] = credential.secret
    else:
        # Setup tokens and OAuth access tokens are both bearer tokens that need the beta.
        headers["authorization"] = f"Bearer {credential.secret}"
        headers["anthropic-beta"] = OAUTH_BETA
    return headers


def build_body(request: StreamRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": request.messages,
        "stream": True,
    }
    if request.system is not None:
        body["system"] = request.system  # blocks keep their cache_control
    if request.tools:
        body["tools"] = request.tools
    if request.thinking_budget is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": request.thinking_budget}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    return body


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


class AnthropicParser:
    """Anthropic's SSE events to deltas. Pure; one instance per response.

    Unknown events and block types (server tools, citations) are skipped: we never ask
    for them, and a new event type must not break streaming.
    """

    def __init__(self, secret: str = "") -> None:
        # The request's key: an error event that echoes it is redacted before it is cut.
        self._secrets = (secret,) if secret else ()
        self.builder = MessageBuilder()
        self._usage = Usage()
        self._stop_reason: str | None = None
        self._tool_ids: dict[int | None, str] = {}  # block index → tool_use id
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, event: str, data: str) -> list[Delta]:
        if not data.strip():
            return []
        try:
            payload = json.loads(data)
        except ValueError:
            raise malformed_stream(f"event {event[:40]!r} is not JSON") from None
        if not isinstance(payload, dict):
            raise malformed_stream(f"event {event[:40]!r} is not a JSON object")
        kind = _str(payload.get("type")) or event
        deltas = self._handle(kind, payload)
        for delta in deltas:
            self.builder.add(delta)
        if kind == "message_stop":
            self._done = True
            end = MessageEnd(self.builder.build(self._stop_reason or "end_turn"))
            deltas.append(end)
        return deltas

    def eof(self) -> list[Delta]:
        raise stream_ended_early()

    def _handle(self, kind: str, payload: dict[str, Any]) -> list[Delta]:
        if kind == "message_start":
            message = payload.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            return self._merge_usage(usage)
        if kind == "content_block_start":
            return self._block_start(_int(payload.get("index")), payload.get("content_block"))
        if kind == "content_block_delta":
            return self._block_delta(_int(payload.get("index")), payload.get("delta"))
        if kind == "content_block_stop":
            self.builder.end_block()
            tool_id = self._tool_ids.pop(_int(payload.get("index")), None)
            return [ToolUseStop(tool_id)] if tool_id is not None else []
        if kind == "message_delta":
            delta = payload.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                self._stop_reason = delta["stop_reason"]
            return self._merge_usage(payload.get("usage"))
        if kind == "error":
            failure = parse_failure(None, {}, payload, now=time.time(), secrets=self._secrets)
            raise UpstreamFailure(failure, mid_stream=True)
        return []  # ping, message_stop, and anything new

    def _block_start(self, index: int | None, block: object) -> list[Delta]:
        if not isinstance(block, dict):
            return []
        kind = block.get("type")
        self.builder.end_block()
        if kind == "text":
            text = _str(block.get("text"))
            return [TextDelta(text)] if text else []
        if kind == "thinking":
            out: list[Delta] = []
            if thinking := _str(block.get("thinking")):
                out.append(ThinkingDelta(thinking))
            if signature := _str(block.get("signature")):
                out.append(SignatureDelta(signature))
            return out
        if kind == "redacted_thinking":
            self.builder.redacted_thinking(_str(block.get("data")))
            return []
        if kind == "tool_use":
            tool_id = _str(block.get("id")) or f"toolu_index_{index}"
            self._tool_ids[index] = tool_id
            return [ToolUseStart(tool_id, _str(block.get("name")))]
        return []

    def _block_delta(self, index: int | None, delta: object) -> list[Delta]:
        if not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta":
            text = _str(delta.get("text"))
            return [TextDelta(text)] if text else []
        if kind == "thinking_delta":
            text = _str(delta.get("thinking"))
            return [ThinkingDelta(text)] if text else []
        if kind == "signature_delta":
            signature = _str(delta.get("signature"))
            return [SignatureDelta(signature)] if signature else []
        if kind == "input_json_delta":
            tool_id = self._tool_ids.get(index)
            fragment = _str(delta.get("partial_json"))
            # The API opens every input with an empty fragment: not worth a notification.
            if tool_id is None or not fragment:
                return []
            return [ToolInputDelta(tool_id, fragment)]
        return []

    def _merge_usage(self, usage: object) -> list[Delta]:
        if not isinstance(usage, dict):
            return []
        changes = _usage_changes(usage)
        if not changes:
            return []
        self._usage = attrs.evolve(self._usage, **changes)
        return [UsageDelta(self._usage)]


@attrs.frozen
class AnthropicProvider:
    """``POST {base_url}/v1/messages``, streamed."""

    name: str
    base_url: str

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1/messages"

    def stream(
        self, client: httpx.AsyncClient, request: StreamRequest, credential: Credential
    ) -> AsyncGenerator[Delta, None]:
        # Returned, not wrapped in another generator: closing what the caller holds
        # closes the HTTP stream at once.
        return stream_deltas(
            client,
            self.url,
            headers=build_headers(credential),
            body=build_body(request),
            parser=AnthropicParser(credential.secret),
            secret=credential.secret,
        )
