"""The OpenAI-compatible chat completions wire format (OpenAI, Azure, Groq, …)."""

from __future__ import annotations

import re
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
    error_response,
    go_duration,
    now,
    pieces,
    stop_reason,
    tool_json,
    usage,
)
from sidecar.fake._steps import Error, Reply, Text, Thinking, ToolUse

# Scripts name errors in Anthropic's terms; this is what OpenAI says for each:
# (type, code, message).
_ERRORS: dict[str, tuple[str, str | None, str]] = {
    "rate_limit_error": (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again later.",
    ),
    "insufficient_quota": (
        "insufficient_quota",
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    "authentication_error": (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided.",
    ),
    "permission_error": (
        "invalid_request_error",
        None,
        "You are not allowed to make this request.",
    ),
    "not_found_error": (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    "invalid_request_error": ("invalid_request_error", None, "Invalid request."),
    "request_too_large": ("invalid_request_error", None, "Request too large."),
    "api_error": (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    "overloaded_error": (
        "server_error",
        None,
        "The engine is currently overloaded, please try again later.",
    ),
}

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_TEXT = b'{"content":%b}'
_REASONING = b'{"reasoning_content":%b}'
_PARTS_TEXT = b'{"content":[{"type":"text","text":%b}]}'
_PARTS_THINKING = b'{"content":[{"type":"thinking","thinking":[{"type":"text","text":%b}]}]}'

_AZURE_PATH = re.compile(r"/openai/deployments/([^/]+)/chat/completions$")
_DONE = b"data: [DONE]\n\n"


def deployment(path: str) -> str | None:
    """The Azure deployment named in the path, which stands in for the model."""
    match = _AZURE_PATH.search(path)
    return match.group(1) if match else None


def _error_object(err_type: str, message: str | None, code: str | None) -> dict[str, Any]:
    kind, default_code, default_message = _ERRORS.get(err_type, (err_type, None, "Error"))
    return {
        "error": {
            "message": message if message is not None else default_message,
            "type": kind,
            "param": None,
            "code": code if code is not None else default_code,
        }
    }


class OpenAI(Flavour):
    name = "openai"

    def credential(self, headers: Mapping[str, str]) -> str | None:
        # Azure sends its key in api-key; everyone else as a bearer token.
        return bearer(headers) or headers.get("api-key") or None

    def model(self, body: Mapping[str, Any], path: str) -> str | None:
        model = body.get("model")
        if isinstance(model, str):
            return model
        return deployment(path)

    def check_request(self, headers: Mapping[str, str], body: object, path: str) -> Error | None:
        if not isinstance(body, Mapping):
            return Error(
                "invalid_request_error", "We could not parse the JSON body of your request."
            )
        if self.model(body, path) is None:
            return Error("invalid_request_error", "you must provide a model parameter")
        return self.check_fields(body)

    def check_fields(self, body: Mapping[str, Any]) -> Error | None:
        """What this endpoint's body must carry besides the model."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return Error("invalid_request_error", "Missing required parameter: 'messages'.")
        return None

    def missing_key(self) -> Error:
        # OpenAI says invalid_request_error with a null code here, but still 401.
        return Error(
            "invalid_request_error",
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            status=401,
        )

    def unknown_key(self, fingerprint: str) -> Error:
        return Error(
            "authentication_error",
            f"Incorrect API key provided: {fingerprint}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
        )

    def base_headers(self, ctx: Context) -> Headers:
        return [("x-request-id", f"req_fake{ctx.no:06d}")]

    def error(self, err: Error, ctx: Context) -> tuple[int, Headers, bytes]:
        reset: Headers = []
        for name, window in err.all_windows(requests_limit=500).items():
            reset += [
                (f"x-ratelimit-limit-{name}", str(window.limit_value)),
                (f"x-ratelimit-remaining-{name}", str(window.remaining)),
                (f"x-ratelimit-reset-{name}", go_duration(window.reset_in)),
            ]
        return error_response(err, reset, dumpb(_error_object(err.type, err.message, err.code)))

    def midstream_error(self, err_type: str, message: str) -> bytes:
        return b"data: %b\n\n" % dumpb(_error_object(err_type, message, None))

    @staticmethod
    def _usage(reply: Reply, ctx: Context, content: tuple[Any, ...]) -> dict[str, Any]:
        counts = usage(reply, ctx, content)
        # OpenAI's prompt_tokens include the cached ones; Anthropic's input does not.
        prompt = counts.input + counts.cache_read + counts.cache_write
        return {
            "prompt_tokens": prompt,
            "completion_tokens": counts.output,
            "total_tokens": prompt + counts.output,
            "prompt_tokens_details": {"cached_tokens": counts.cache_read},
        }

    @staticmethod
    def _finish(reply: Reply, content: tuple[Any, ...]) -> str:
        reason = stop_reason(reply, content)
        return _FINISH.get(reason, reason)

    def stream_events(self, reply: Reply, ctx: Context) -> list[bytes]:
        content = blocks(reply, ctx)
        # Every chunk repeats id, created and model: encode that prefix once.
        head = (
            b'data: {"id":"chatcmpl-fake%06d","object":"chat.completion.chunk","created":%d,'
            b'"model":%b,"choices":[' % (ctx.no, now(), dumpb(ctx.model))
        )
        delta_head = head + b'{"index":0,"delta":'
        delta_tail = b',"finish_reason":null}]}\n\n'
        events = [delta_head + b'{"role":"assistant","content":""}' + delta_tail]
        tool_index = 0
        # Mistral's reasoning models: typed parts in "content" instead of a string, and
        # thinking among them instead of in "reasoning_content".
        text_delta, thinking_delta = (
            (_PARTS_TEXT, _PARTS_THINKING) if reply.content_parts else (_TEXT, _REASONING)
        )
        for block in content:
            if isinstance(block, Text):
                for piece in pieces(block.text, reply.chunk):
                    events.append(delta_head + text_delta % dump_str(piece) + delta_tail)
            elif isinstance(block, Thinking):
                for piece in pieces(block.text, reply.chunk):
                    events.append(delta_head + thinking_delta % dump_str(piece) + delta_tail)
            elif isinstance(block, ToolUse):
                call = {
                    "index": tool_index,
                    "id": block.id,
                    "type": "function",
                    "function": {"name": block.name, "arguments": ""},
                }
                events.append(delta_head + dumpb({"tool_calls": [call]}) + delta_tail)
                for piece in pieces(tool_json(block), reply.chunk):
                    fragment = {"index": tool_index, "function": {"arguments": piece}}
                    events.append(delta_head + dumpb({"tool_calls": [fragment]}) + delta_tail)
                tool_index += 1
            # Redacted thinking has no OpenAI equivalent: nothing is sent for it.
        finish = dumpb(self._finish(reply, content))
        events.append(delta_head + b'{},"finish_reason":%b}]}\n\n' % finish)
        if ctx.include_usage:
            events.append(head + b'],"usage":%b}\n\n' % dumpb(self._usage(reply, ctx, content)))
        events.append(_DONE)
        return events

    def message(self, reply: Reply, ctx: Context) -> bytes:
        content = blocks(reply, ctx)
        text = "".join(b.text for b in content if isinstance(b, Text))
        reasoning = "".join(b.text for b in content if isinstance(b, Thinking))
        calls = [
            {
                "id": b.id,
                "type": "function",
                "function": {"name": b.name, "arguments": tool_json(b)},
            }
            for b in content
            if isinstance(b, ToolUse)
        ]
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if reply.content_parts:
            parts: list[dict[str, Any]] = []
            if reasoning:
                parts.append(
                    {"type": "thinking", "thinking": [{"type": "text", "text": reasoning}]}
                )
            if text:
                parts.append({"type": "text", "text": text})
            message["content"] = parts
        elif reasoning:
            message["reasoning_content"] = reasoning
        if calls:
            message["tool_calls"] = calls
        return dumpb(
            {
                "id": f"chatcmpl-fake{ctx.no:06d}",
                "object": "chat.completion",
                "created": now(),
                "model": ctx.model,
                "choices": [
                    {"index": 0, "message": message, "finish_reason": self._finish(reply, content)}
                ],
                "usage": self._usage(reply, ctx, content),
            }
        )
