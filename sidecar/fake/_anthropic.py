"""The Anthropic Messages API wire format: SSE events, whole messages, error bodies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sidecar.fake._render import (
    Context,
    Flavour,
    Headers,
    bearer,
    blocks,
    dump_str,
    dumpb,
    dumps,
    error_response,
    pieces,
    rfc3339_in,
    stop_reason,
    tool_json,
    usage,
)
from sidecar.fake._steps import Error, RedactedThinking, Reply, Text, Thinking, ToolUse

_MESSAGES = {
    "invalid_request_error": "Invalid request",
    "authentication_error": "invalid x-api-key",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not found",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": (
        "Number of requests has exceeded your per-minute rate limit; see the response "
        "headers for current usage. Please try again later."
    ),
    "api_error": "Internal server error",
    "overloaded_error": "Overloaded",
}

# Text deltas are most of every stream (20,000 of them in the benchmarks): build them
# from pre-encoded halves instead of a dict and a json.dumps per event.
_DELTA_HEAD = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":'
_TEXT_DELTA = _DELTA_HEAD + b'{"type":"text_delta","text":%b}}\n\n'
_THINKING_DELTA = _DELTA_HEAD + b'{"type":"thinking_delta","thinking":%b}}\n\n'
_JSON_DELTA = _DELTA_HEAD + b'{"type":"input_json_delta","partial_json":%b}}\n\n'
_PING = b'event: ping\ndata: {"type":"ping"}\n\n'


def _event(name: str, data: Mapping[str, Any]) -> bytes:
    return b"event: %b\ndata: %b\n\n" % (name.encode(), dumpb(data))


def error_body(err_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": err_type, "message": message}}


class Anthropic(Flavour):
    name = "anthropic"

    def credential(self, headers: Mapping[str, str]) -> str | None:
        # API keys come in x-api-key; OAuth tokens, and API keys from newer SDK majors,
        # as a bearer token.
        if key := headers.get("x-api-key"):
            return key
        return bearer(headers)

    def model(self, body: Mapping[str, Any], path: str) -> str | None:
        model = body.get("model")
        return model if isinstance(model, str) else None

    def check_request(self, headers: Mapping[str, str], body: object, path: str) -> Error | None:
        if not headers.get("anthropic-version"):
            return Error("invalid_request_error", "anthropic-version: header is required")
        if not isinstance(body, Mapping):
            return Error("invalid_request_error", "request body must be a JSON object")
        if not isinstance(body.get("model"), str):
            return Error("invalid_request_error", "model: Field required")
        if not isinstance(body.get("messages"), list):
            return Error("invalid_request_error", "messages: Field required")
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            return Error("invalid_request_error", "max_tokens: Field required")
        return None

    def missing_key(self) -> Error:
        return Error("authentication_error", "x-api-key header is required")

    def unknown_key(self, fingerprint: str) -> Error:
        return Error("authentication_error", "invalid x-api-key")

    def base_headers(self, ctx: Context) -> Headers:
        return [("request-id", f"req_fake{ctx.no:06d}")]

    def error(self, err: Error, ctx: Context) -> tuple[int, Headers, bytes]:
        reset: Headers = []
        for name, window in err.all_windows(requests_limit=50).items():
            prefix = f"anthropic-ratelimit-{name}"
            reset += [
                (f"{prefix}-limit", str(window.limit_value)),
                (f"{prefix}-remaining", str(window.remaining)),
                (f"{prefix}-reset", rfc3339_in(window.reset_in, err.clock_skew)),
            ]
        message = err.message if err.message is not None else _MESSAGES.get(err.type, "Error")
        return error_response(err, reset, dumpb(error_body(err.type, message)))

    def midstream_error(self, err_type: str, message: str) -> bytes:
        return _event("error", error_body(err_type, message))

    def _usage(self, reply: Reply, ctx: Context, content: tuple[Any, ...]) -> dict[str, int]:
        counts = usage(reply, ctx, content)
        return {
            "input_tokens": counts.input,
            "cache_creation_input_tokens": counts.cache_write,
            "cache_read_input_tokens": counts.cache_read,
            "output_tokens": counts.output,
        }

    def stream_events(self, reply: Reply, ctx: Context) -> list[bytes]:
        content = blocks(reply, ctx)
        totals = self._usage(reply, ctx, content)
        # message_start carries the input side and a token or so of output, as the API's.
        start_usage = {**totals, "output_tokens": min(1, totals["output_tokens"])}
        events = [
            _event(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": f"msg_fake{ctx.no:06d}",
                        "type": "message",
                        "role": "assistant",
                        "model": ctx.model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": start_usage,
                    },
                },
            ),
            _PING,
        ]
        every = reply.ping_every
        deltas = 0

        def add_delta(event: bytes) -> None:
            nonlocal deltas
            events.append(event)
            deltas += 1
            if every and deltas % every == 0:
                events.append(_PING)

        for index, block in enumerate(content):
            start: dict[str, Any]
            if isinstance(block, Text):
                start = {"type": "text", "text": ""}
            elif isinstance(block, Thinking):
                start = {"type": "thinking", "thinking": "", "signature": ""}
            elif isinstance(block, RedactedThinking):
                start = {"type": "redacted_thinking", "data": block.data}
            else:
                start = {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
            events.append(
                _event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": start},
                )
            )
            if isinstance(block, Text):
                for piece in pieces(block.text, reply.chunk):
                    add_delta(_TEXT_DELTA % (index, dump_str(piece)))
            elif isinstance(block, Thinking):
                for piece in pieces(block.text, reply.chunk):
                    add_delta(_THINKING_DELTA % (index, dump_str(piece)))
                signature = {"type": "signature_delta", "signature": block.signature}
                add_delta(
                    _event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": signature},
                    )
                )
            elif isinstance(block, ToolUse):
                # The API opens every tool input with an empty fragment.
                for piece in ["", *pieces(tool_json(block), reply.chunk)]:
                    add_delta(_JSON_DELTA % (index, dump_str(piece)))
            events.append(
                _event("content_block_stop", {"type": "content_block_stop", "index": index})
            )
        delta_usage = (
            totals if reply.delta_usage == "full" else {"output_tokens": totals["output_tokens"]}
        )
        events.append(
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason(reply, content), "stop_sequence": None},
                    "usage": delta_usage,
                },
            )
        )
        events.append(_event("message_stop", {"type": "message_stop"}))
        return events

    def message(self, reply: Reply, ctx: Context) -> bytes:
        content = blocks(reply, ctx)
        out: list[dict[str, Any]] = []
        for block in content:
            if isinstance(block, Text):
                out.append({"type": "text", "text": block.text})
            elif isinstance(block, Thinking):
                out.append(
                    {"type": "thinking", "thinking": block.text, "signature": block.signature}
                )
            elif isinstance(block, RedactedThinking):
                out.append({"type": "redacted_thinking", "data": block.data})
            else:
                out.append(
                    {
                        "type": "tool_use",
                        "id": block.id,
                        "name": block.name,
                        "input": dict(block.input),
                    }
                )
        return dumps(
            {
                "id": f"msg_fake{ctx.no:06d}",
                "type": "message",
                "role": "assistant",
                "model": ctx.model,
                "content": out,
                "stop_reason": stop_reason(reply, content),
                "stop_sequence": None,
                "usage": self._usage(reply, ctx, content),
            }
        ).encode()
