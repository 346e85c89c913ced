"""The types of every custom message on the wire, and their JSON form.

Params arrive as plain dicts and are structured here, strictly: a wrong type
is an error naming the field (JSON-RPC -32602), never a silent coercion.
Field names are camelCase on the wire and snake_case in Python; ``None``
fields are left out. See docs/protocol.md for every method with examples.
"""

from __future__ import annotations

import enum
import time
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from sidecar.errors import InvalidParams
from sidecar.rotation.status import CredentialStatus, ProviderStatus

__all__ = [
    "CredentialInfo",
    "KeyAddParams",
    "KeyAddResult",
    "KeyListParams",
    "KeyListResult",
    "KeyRemoveParams",
    "KeyRemoveResult",
    "KeyResetParams",
    "LoginCancelParams",
    "LoginCancelResult",
    "LoginCompleteParams",
    "LoginCompleteResult",
    "LoginParams",
    "LoginResult",
    "LogoutParams",
    "LogoutResult",
    "ProviderParams",
    "ProviderState",
    "StatusNotification",
    "StatusParams",
    "StatusResult",
    "StreamParams",
    "StreamResult",
    "credential_info",
    "parse_params",
    "provider_state",
    "status_notification",
    "stream_request",
    "stream_result",
    "to_wire",
]

T = TypeVar("T")


# -- params --------------------------------------------------------------------


@attrs.frozen
class StatusParams:
    provider: str | None = None


@attrs.frozen
class ProviderParams:
    provider: str


KeyListParams = ProviderParams
KeyResetParams = ProviderParams


@attrs.frozen
class KeyAddParams:
    provider: str
    key: str | None = None


@attrs.frozen
class KeyRemoveParams:
    provider: str
    fingerprint: str | None = None
    index: int | None = None


@attrs.frozen
class LoginParams:
    provider: str
    mode: str | None = None  # "auto" (default) or "paste"
    profile: str | None = None  # the profile name; "default" when left out


@attrs.frozen
class LoginCompleteParams:
    login_id: str
    input: str  # code#state, the whole redirect URL, or code=…&state=…


@attrs.frozen
class LoginCancelParams:
    login_id: str


@attrs.frozen
class LogoutParams:
    provider: str
    profile: str | None = None


@attrs.frozen
class StreamParams:
    provider: str
    model: str
    messages: list[Any]
    max_tokens: int
    system: Any = None  # a string or a list of text blocks: checked by stream_request
    tools: list[Any] | None = None
    thinking: dict[str, Any] | None = None  # {"budgetTokens": N}
    temperature: float | None = None
    profile: str | None = None
    stream_id: str | None = None


# -- results and notifications -------------------------------------------------


@attrs.frozen
class CredentialInfo:
    id: str
    kind: str
    source: str
    fingerprint: str
    state: str
    expires_at: str | None = None
    cooldown_until: str | None = None
    message: str | None = None
    label: str | None = None


@attrs.frozen
class ProviderState:
    provider: str
    kind: str
    text: str
    index: int
    size: int
    rotated: bool
    credentials: list[CredentialInfo]
    message: str | None = None


@attrs.frozen
class StatusResult:
    providers: list[ProviderState]
    problems: list[str] = attrs.field(factory=list)


@attrs.frozen
class KeyAddResult:
    credential: CredentialInfo
    added: bool  # False: it was in the pool already
    status: ProviderState


@attrs.frozen
class KeyListResult:
    provider: str
    credentials: list[CredentialInfo]


@attrs.frozen
class KeyRemoveResult:
    removed: CredentialInfo
    status: ProviderState


@attrs.frozen
class LoginResult:
    login_id: str
    url: str
    mode: str  # "auto" or "paste": paste when no loopback callback could be used


@attrs.frozen
class LoginCompleteResult:
    provider: str
    credential: CredentialInfo  # the saved login, by fingerprint
    status: ProviderState


@attrs.frozen
class LoginCancelResult:
    cancelled: bool  # False: no such login was running (it had ended already)


@attrs.frozen
class LogoutResult:
    status: ProviderState
    removed: CredentialInfo | None = None  # None: there was no such login


@attrs.frozen
class CredentialRef:
    id: str
    fingerprint: str


@attrs.frozen
class StreamResult:
    stream_id: str
    model: str
    content: list[dict[str, Any]]
    text: str
    stop_reason: str
    usage: dict[str, int]
    cost: dict[str, Any]
    credential: CredentialRef
    attempts: int


@attrs.frozen
class StatusNotification:
    """``sidecar/didChangeStatus``: what a status bar shows."""

    provider: str
    kind: str
    text: str
    index: int
    size: int
    rotated: bool
    message: str | None = None


def _iso(ts: float | None) -> str | None:
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def credential_info(c: CredentialStatus) -> CredentialInfo:
    return CredentialInfo(
        id=c.id,
        kind=c.kind,
        source=c.source,
        fingerprint=c.fingerprint,
        state=c.state,
        expires_at=_iso(c.expires_at),
        cooldown_until=_iso(c.cooldown_until),
        message=c.message,
        label=c.label,
    )


def provider_state(s: ProviderStatus) -> ProviderState:
    return ProviderState(
        provider=s.provider,
        kind=s.kind.value,
        text=s.text,
        index=s.index,
        size=s.size,
        rotated=s.rotated,
        credentials=[credential_info(c) for c in s.credentials],
        message=s.message,
    )


def status_notification(s: ProviderStatus) -> StatusNotification:
    return StatusNotification(
        s.provider, s.kind.value, s.text, s.index, s.size, s.rotated, s.message
    )


# -- sidecar/stream ------------------------------------------------------------

_ROLES = ("user", "assistant")


def stream_request(params: StreamParams) -> Any:
    """Check a stream request beyond its types and turn it into a provider StreamRequest."""
    from sidecar.providers import StreamRequest  # not at start-up: only streams need it

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
            raise InvalidParams(where, f"expected an object, got {_json_type(message)}")
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


def stream_result(outcome: Any) -> StreamResult:
    """The wire result of an engine StreamOutcome."""
    from sidecar.engine import usage_to_wire

    message, cost = outcome.message, outcome.cost
    return StreamResult(
        stream_id=outcome.stream_id,
        model=outcome.model,
        content=message.content,
        text=message.text,
        stop_reason=message.stop_reason,
        usage=usage_to_wire(message.usage),
        cost=converter.unstructure(cost),
        credential=CredentialRef(outcome.credential.id, outcome.credential.fingerprint),
        attempts=outcome.attempts,
    )


# -- the converter -------------------------------------------------------------


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _strict(kind: type, label: str) -> Any:
    def hook(value: Any, _: type) -> Any:
        # bool is an int in Python, but not on the wire.
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise TypeError(f"expected {label}, got {_json_type(value)}")
        return value

    return hook


def _number(value: Any, _: type) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"expected a number, got {_json_type(value)}")
    return float(value)


def _json_type(value: Any) -> str:
    return {
        type(None): "null",
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=False)
    conv.register_structure_hook(str, _strict(str, "a string"))
    conv.register_structure_hook(int, _strict(int, "an integer"))
    conv.register_structure_hook(bool, _strict(bool, "a boolean"))
    conv.register_structure_hook(float, _number)
    conv.register_structure_hook(dict, _strict(dict, "an object"))
    conv.register_structure_hook(list, _strict(list, "an array"))
    conv.register_structure_hook(Any, lambda v, _: v)
    conv.register_unstructure_hook(enum.Enum, lambda e: e.value)

    def structure_factory(cls: type) -> Any:
        overrides = {a.name: override(rename=_camel(a.name)) for a in attrs.fields(cls)}
        return make_dict_structure_fn(cls, conv, _cattrs_detailed_validation=True, **overrides)  # type: ignore[arg-type]

    def unstructure_factory(cls: type) -> Any:
        overrides = {
            a.name: override(rename=_camel(a.name), omit_if_default=a.default is None)
            for a in attrs.fields(cls)
        }
        return make_dict_unstructure_fn(cls, conv, **overrides)  # type: ignore[arg-type]

    conv.register_structure_hook_factory(attrs.has, structure_factory)
    conv.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    return conv


converter = _make_converter()


def parse_params(cls: type[T], params: Any) -> T:
    """Structure raw params into ``cls``; InvalidParams naming the first bad field."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidParams("params", f"expected an object, got {_json_type(params)}")
    for a in attrs.fields(cls):  # type: ignore[arg-type]
        wire = _camel(a.name)
        if a.default is attrs.NOTHING and params.get(wire) is None:
            raise InvalidParams(wire, "is required")
    try:
        return converter.structure(params, cls)
    except cattrs.ClassValidationError as exc:
        raise _first_problem(exc) from None


def _first_problem(exc: cattrs.BaseValidationError, path: str = "") -> InvalidParams:
    for sub in exc.exceptions:
        notes = getattr(sub, "__notes__", [])
        note = next((n for n in notes if hasattr(n, "name")), None)
        name = _camel(str(getattr(note, "name", ""))) if note is not None else ""
        here = f"{path}.{name}" if path and name else (name or path or "params")
        if isinstance(sub, cattrs.BaseValidationError):
            return _first_problem(sub, here)
        return InvalidParams(here, str(sub))
    return InvalidParams(path or "params", "is invalid")


def to_wire(obj: Any) -> Any:
    """The JSON-able form of a result or notification."""
    return converter.unstructure(obj)
