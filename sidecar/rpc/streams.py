"""``sidecar/stream`` params checked beyond their types, and its result.

The params' types are checked by :func:`sidecar.rpc.protocol.parse_params`; here,
what types cannot say (a role, a positive budget, a tool's schema), and the
conversion to the provider layer's :class:`~sidecar.providers.StreamRequest`.
"""

from __future__ import annotations

import time

from sidecar.errors import InvalidParams
from sidecar.events import StreamOutcome
from sidecar.providers import StreamRequest
from sidecar.rpc.protocol import CredentialRef, StreamParams, StreamResult, converter, json_type
from sidecar.rpc.wire import usage_to_wire

__all__ = ["fallback_note", "stream_request", "stream_result"]

_ROLES = ("user", "assistant")


def stream_request(params: StreamParams) -> StreamRequest:
    """Check a stream request beyond its types and turn it into a provider StreamRequest."""
    if not params.model.strip():
        raise InvalidParams("model", "must not be empty")
    if params.max_tokens < 1:
        raise InvalidParams("maxTokens", "must be at least 1")
    if params.temperature is not None and not 0 <= params.temperature <= 2:
        raise InvalidParams("temperature", "must be between 0 and 2")
    if not params.messages:
        raise InvalidParams("messages", "must hold at least one message")
    for i, message in enumerate(params.messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidParams(where, f"expected an object, got {json_type(message)}")
        if message.get("role") not in _ROLES:
            raise InvalidParams(f"{where}.role", 'must be "user" or "assistant"')
        content = message.get("content")
        if not isinstance(content, str) and not (
            isinstance(content, list) and all(isinstance(b, dict) and "type" in b for b in content)
        ):
            raise InvalidParams(f"{where}.content", "must be a string or a list of blocks")
    system = params.system
    if (
        system is not None
        and not isinstance(system, str)
        and not (isinstance(system, list) and all(isinstance(b, dict) for b in system))
    ):
        raise InvalidParams("system", "must be a string or a list of text blocks")
    tools = None
    if params.tools is not None:
        tools = []
        for i, tool in enumerate(params.tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise InvalidParams(f"tools[{i}].name", "every tool needs a name")
            schema = tool.get("inputSchema", tool.get("input_schema", {"type": "object"}))
            if not isinstance(schema, dict):
                raise InvalidParams(f"tools[{i}].inputSchema", "must be a JSON schema object")
            converted = {"name": tool["name"], "input_schema": schema}
            if isinstance(tool.get("description"), str):
                converted["description"] = tool["description"]
            tools.append(converted)
    budget = None
    if params.thinking is not None:
        budget = params.thinking.get("budgetTokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
            raise InvalidParams("thinking.budgetTokens", "must be a positive integer")
    return StreamRequest(
        model=params.model,
        messages=params.messages,
        max_tokens=params.max_tokens,
        system=system,
        tools=tools,
        thinking_budget=budget,
        temperature=params.temperature,
    )


def stream_result(stream_id: str, outcome: StreamOutcome, *, content: bool = True) -> StreamResult:
    """The wire result of an engine :class:`~sidecar.events.StreamOutcome`.

    The deltas carried the answer already: the result holds it once, as the message's
    blocks (what a client sends back as the assistant's turn), and not at all when
    ``content`` is False (a client that built the answer from the deltas).
    """
    message, cost = outcome.message, outcome.cost
    return StreamResult(
        stream_id=stream_id,
        model=outcome.model,
        content=message.content if content else None,
        stop_reason=message.stop_reason,
        usage=usage_to_wire(message.usage),
        cost=converter.unstructure(cost),
        credential=CredentialRef(outcome.credential.id, outcome.credential.fingerprint),
        attempts=outcome.attempts,
        provider=outcome.provider,
        fallback_from=_fallback_from(outcome),
    )


def _fallback_from(outcome: StreamOutcome) -> dict[str, str] | None:
    """What the request asked for, when a fallback answered it instead."""
    f = outcome.fallback
    if f is None:
        return None
    return {"provider": f.from_provider, "model": f.from_model, "reason": f.reason}


def fallback_note(outcome: StreamOutcome) -> str | None:
    """What the requested provider's status says after a fallback answered; None when
    the provider answered itself."""
    f = outcome.fallback
    if f is None:
        return None
    at = time.strftime("%H:%M:%S", time.localtime())
    return f"answered by the fallback {f.provider} {f.model} at {at}: {f.reason}"
