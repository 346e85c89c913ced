"""OpenAI-compatible chat completions (OpenAI, Azure, Groq, OpenRouter, …): request
building and the SSE chunk parser."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any, Literal
from urllib.parse import quote

import attrs
import httpx

from sidecar.credentials import Credential
from sidecar.providers._errors import UpstreamFailure, malformed_stream, stream_ended_early
from sidecar.providers._message import MessageBuilder
from sidecar.providers._openai_convert import to_openai_messages, to_openai_tools
from sidecar.providers._sse import stream_deltas
from sidecar.providers._types import (
    Delta,
    MessageEnd,
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

__all__ = [
    "AzureConfig",
    "OpenAIParser",
    "OpenAIProvider",
    "content_deltas",
    "map_finish_reason",
]

MaxTokensField = Literal["max_tokens", "max_completion_tokens"]

_FINISH_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",  # the legacy name, still sent by some hosts
    "content_filter": "refusal",
}


def map_finish_reason(finish_reason: str | None, *, has_tool_calls: bool) -> str:
    """OpenAI's finish_reason as one of the protocol's stop reasons.

    Some hosts say "stop" (or nothing) after tool calls; the editor must still answer
    them, so that is ``tool_use``. Unknown reasons read as ``end_turn``: the stream did
    end normally, and the protocol's set of stop reasons is closed.
    """
    if has_tool_calls and finish_reason in (None, "stop"):
        return "tool_use"
    return _FINISH_REASONS.get(finish_reason or "stop", "end_turn")


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from_openai(usage: Mapping[str, Any]) -> Usage:
    """OpenAI counts cached tokens inside prompt_tokens; ours (Anthropic's) apart, so
    input = prompt - cached and cache_read = cached, and costs add up the same way for
    both flavours. OpenAI reports no cache writes."""
    prompt = _int(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, Mapping) else 0
    cached = min(cached, prompt)
    return Usage(
        input_tokens=prompt - cached,
        output_tokens=_int(usage.get("completion_tokens")),
        cache_read_tokens=cached,
    )


def _thinking_texts(thinking: object) -> list[str]:
    # Mistral's ThinkChunk holds a list of TextChunks; a plain string is read too.
    if isinstance(thinking, str):
        return [thinking] if thinking else []
    if not isinstance(thinking, list):
        return []
    return [
        part["text"]
        for part in thinking
        if isinstance(part, dict) and isinstance(part.get("text"), str) and part["text"]
    ]


def content_deltas(content: object) -> list[Delta]:
    """``delta.content``, a string or a list of typed parts, as text and thinking deltas.

    Mistral's reasoning models (Magistral, and Mistral Small/Medium with
    ``reasoning_effort``) stream ``content`` as parts, in order:
    ``[{"type": "thinking", "thinking": [{"type": "text", "text": …}]}]`` while they
    think, ``[{"type": "text", "text": …}]`` for the answer (Mistral's API spec:
    ContentChunk = TextChunk | ThinkChunk | ReferenceChunk | …; a TextChunk's ``type``
    may be left out). Other part types (references, images) have no delta kind here.
    """
    if isinstance(content, str):
        return [TextDelta(content)] if content else []
    if not isinstance(content, list):
        return []
    out: list[Delta] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type", "text")
        if kind == "thinking":
            out += [ThinkingDelta(text) for text in _thinking_texts(part.get("thinking"))]
        elif kind == "text" and isinstance(part.get("text"), str) and part["text"]:
            out.append(TextDelta(part["text"]))
    return out


@attrs.define
class _ToolCall:
    id: str
    name: str = ""
    pending: list[str] = attrs.field(factory=list)  # arguments that came before the name
    started: bool = False
    stopped: bool = False


class OpenAIParser:
    """Chat completion chunks to deltas. Pure; one instance per response.

    Tool calls arrive by ``index``; the id and name usually come in the first chunk of
    an index, but a host may send the name later, so ToolUseStart waits for the name and
    the argument fragments that came before it are sent right after it.
    """

    def __init__(self, secret: str = "") -> None:
        # The request's key: an error event that echoes it is redacted before it is cut.
        self._secrets = (secret,) if secret else ()
        self.builder = MessageBuilder()
        self._calls: dict[int, _ToolCall] = {}
        self._finish: str | None = None
        self._finished = False  # a finish_reason arrived: tool calls are complete
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, event: str, data: str) -> list[Delta]:
        text = data.strip()
        if not text:
            return []
        if text == "[DONE]":
            return self._end()
        try:
            chunk = json.loads(text)
        except ValueError:
            raise malformed_stream("a chunk is not JSON") from None
        if not isinstance(chunk, dict):
            raise malformed_stream("a chunk is not a JSON object")
        if chunk.get("error") is not None:
            failure = parse_failure(None, {}, chunk, now=time.time(), secrets=self._secrets)
            raise UpstreamFailure(failure, mid_stream=True)
        deltas: list[Delta] = []
        choices = chunk.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            # We never ask for n > 1: the first choice is the answer.
            deltas += self._choice(choices[0])
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            deltas.append(UsageDelta(usage_from_openai(usage)))
        for delta in deltas:
            self.builder.add(delta)
        return deltas

    def eof(self) -> list[Delta]:
        # Some hosts close the stream after the finish chunk without "[DONE]": once a
        # finish_reason came, the message is complete. Without one it was cut short.
        if not self._finished:
            raise stream_ended_early()
        return self._end()

    def _choice(self, choice: dict[str, Any]) -> list[Delta]:
        out: list[Delta] = []
        delta = choice.get("delta")
        if isinstance(delta, dict):
            reasoning = delta.get("reasoning_content")
            if not isinstance(reasoning, str) or not reasoning:
                reasoning = delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                out.append(ThinkingDelta(reasoning))
            out += content_deltas(delta.get("content"))
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                out.append(TextDelta(refusal))
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                for call in calls:
                    if isinstance(call, dict):
                        out += self._tool_call(call)
        finish = choice.get("finish_reason")
        if isinstance(finish, str) and finish:
            self._finish = finish
            out += self._close_tools()
        return out

    def _index_of(self, call: dict[str, Any]) -> int:
        index = call.get("index")
        if isinstance(index, int) and not isinstance(index, bool):
            return index
        # No index (seen on some hosts): an id names the call; no id continues the last.
        call_id = call.get("id")
        for known, state in self._calls.items():
            if call_id and state.id == call_id:
                return known
        if not call_id and self._calls:
            return max(self._calls)
        return len(self._calls)

    def _tool_call(self, call: dict[str, Any]) -> list[Delta]:
        index = self._index_of(call)
        state = self._calls.get(index)
        if state is None:
            call_id = call.get("id")
            state = _ToolCall(call_id if isinstance(call_id, str) and call_id else f"call_{index}")
            self._calls[index] = state
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        name = function.get("name")
        if isinstance(name, str) and name and not state.started:
            state.name = name
        out: list[Delta] = []
        if not state.started and state.name:
            out += self._start(state)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            if state.started:
                out.append(ToolInputDelta(state.id, arguments))
            else:
                state.pending.append(arguments)
        return out

    def _start(self, state: _ToolCall) -> list[Delta]:
        state.started = True
        out: list[Delta] = [ToolUseStart(state.id, state.name)]
        out += [ToolInputDelta(state.id, fragment) for fragment in state.pending]
        state.pending.clear()
        return out

    def _close_tools(self) -> list[Delta]:
        self._finished = True
        out: list[Delta] = []
        for _, state in sorted(self._calls.items()):
            if state.stopped:
                continue
            if not state.started:
                out += self._start(state)  # a call whose name never came: still a call
            state.stopped = True
            out.append(ToolUseStop(state.id))
        return out

    def _end(self) -> list[Delta]:
        out = self._close_tools()
        for delta in out:
            self.builder.add(delta)
        self._done = True
        stop = map_finish_reason(self._finish, has_tool_calls=bool(self._calls))
        out.append(MessageEnd(self.builder.build(stop)))
        return out


@attrs.frozen
class AzureConfig:
    api_version: str
    deployments: Mapping[str, str]  # model → deployment; unmapped models are their own name


@attrs.frozen
class OpenAIProvider:
    """``POST {base_url}/chat/completions``, or Azure's deployment URL, streamed.

    ``max_tokens_field``: OpenAI itself (and Azure) take ``max_completion_tokens``, the
    only one their reasoning models accept; other compatible hosts get ``max_tokens``,
    which all of them understand.
    """

    name: str
    base_url: str
    max_tokens_field: MaxTokensField = "max_tokens"
    azure: AzureConfig | None = None

    def url_for(self, model: str) -> str:
        if self.azure is None:
            return f"{self.base_url}/chat/completions"
        deployment = self.azure.deployments.get(model, model)
        return (
            f"{self.base_url}/openai/deployments/{quote(deployment, safe='')}"
            f"/chat/completions?api-version={quote(self.azure.api_version, safe='')}"
        )

    def headers_for(self, credential: Credential) -> dict[str, str]:
        if self.azure is not None and credential.kind == "api_key":
            return {"api-key": credential.secret}
        # Everyone else, and Azure with an Entra ID token, takes a bearer token.
        return {"authorization": f"Bearer {credential.secret}"}

    def body_for(self, request: StreamRequest) -> dict[str, Any]:
        # thinking_budget has no portable equivalent here (reasoning_effort is a coarse
        # level, and hosts disagree on its name); it is not sent.
        body: dict[str, Any] = {
            "model": request.model,
            "messages": to_openai_messages(request.system, request.messages),
            "stream": True,
            "stream_options": {"include_usage": True},
            self.max_tokens_field: request.max_tokens,
        }
        if request.tools:
            body["tools"] = to_openai_tools(request.tools)
        if request.temperature is not None:
            body["temperature"] = request.temperature
        return body

    def stream(
        self, client: httpx.AsyncClient, request: StreamRequest, credential: Credential
    ) -> AsyncGenerator[Delta, None]:
        return stream_deltas(
            client,
            self.url_for(request.model),
            headers=self.headers_for(credential),
            body=self.body_for(request),
            parser=OpenAIParser(credential.secret),
            secret=credential.secret,
        )
