"""The types of every custom message on the wire, and their JSON form.

Params arrive as plain dicts and are structured here, strictly: a wrong type
is an error naming the field (JSON-RPC -32602), never a silent coercion.
Field names are camelCase on the wire and snake_case in Python; ``None``
fields are left out. See docs/protocol.md for every method with examples.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from sidecar.errors import InvalidParams
from sidecar.rotation.headroom import Window
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
    "LoginEnded",
    "LoginParams",
    "LoginResult",
    "LogoutParams",
    "LogoutResult",
    "ModelCooldownInfo",
    "PolicyParams",
    "PolicyResult",
    "ProviderParams",
    "ProviderState",
    "RateWindow",
    "SharedStateInfo",
    "StatusNotification",
    "StatusParams",
    "StatusResult",
    "StreamParams",
    "StreamResult",
    "UsageInfo",
    "credential_info",
    "login_ended",
    "parse_params",
    "provider_state",
    "status_notification",
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
    system: Any = None  # a string or a list of text blocks: checked by streams.stream_request
    tools: list[Any] | None = None
    thinking: dict[str, Any] | None = None  # {"budgetTokens": N}
    temperature: float | None = None
    profile: str | None = None
    stream_id: str | None = None
    omit_content: bool = False  # the client built the answer from the deltas


# -- results and notifications -------------------------------------------------


@attrs.frozen
class RateWindow:
    """One rate-limit window the provider last reported for a credential (headroom).

    ``name``: requests, tokens, input-tokens, output-tokens, or a subscription's unified
    window (``unified-5h``, ``unified-7d``, ``unified``). ``model``: the model scope it
    covers (a model class such as ``sonnet`` on Anthropic); None for ``account`` ones.
    ``percentLeft``: 0-100, from remaining/limit or 1 - utilization.
    """

    name: str
    account: bool
    model: str | None = None
    limit: float | None = None
    remaining: float | None = None
    utilization: float | None = None
    status: str | None = None
    reset_at: str | None = None
    percent_left: int | None = None


@attrs.frozen
class ModelCooldownInfo:
    """The credential rests for this model scope only; other models still use it."""

    model: str
    until: str
    reason: str
    message: str | None = None  # the provider's words


@attrs.frozen
class UsageInfo:
    """A credential's requests that answered and that failed, and its last use.

    ``counted``: ``machine`` (this machine's, in its files) or ``team`` (every machine
    of the team added up, while the team's state is online).
    """

    requests: int
    failures: int
    counted: str
    last_used: str | None = None


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
    windows: list[RateWindow] = attrs.field(factory=list)
    model_cooldowns: list[ModelCooldownInfo] = attrs.field(factory=list)
    usage: UsageInfo | None = None


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
class SharedStateInfo:
    """Where the rotation state lives: this machine's files, or a team's Redis as well."""

    backend: Literal["files", "redis"] = "files"
    where: str | None = None  # the server without its password, and the namespace
    link: Literal["connecting", "online", "offline"] | None = None


@attrs.frozen
class StatusResult:
    providers: list[ProviderState]
    problems: list[str] = attrs.field(factory=list)
    state: SharedStateInfo = attrs.field(factory=SharedStateInfo)


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
class PolicyParams:
    provider: str
    policy: str | None = None  # None: only say which policy is in force


@attrs.frozen
class PolicyResult:
    provider: str
    policy: str
    status: ProviderState


@attrs.frozen
class LoginResult:
    login_id: str
    url: str
    mode: str  # "auto" or "paste": paste when no loopback callback could be used
    message: str | None = None  # what the user is to do now (and why paste, if so)


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
    """The final message: its blocks once (the text is in them, not beside them), or
    none when the request said ``omitContent`` (docs/protocol.md)."""

    stream_id: str
    model: str
    stop_reason: str
    usage: dict[str, int]
    cost: dict[str, Any]
    credential: CredentialRef
    attempts: int
    provider: str  # the provider that answered: another than asked when a fallback did
    fallback_from: dict[str, str] | None = None  # {provider, model, reason} that was asked
    content: list[dict[str, Any]] | None = None


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


@attrs.frozen
class LoginEnded:
    """``sidecar/didEndLogin``: how a login ended, once per login."""

    login_id: str
    provider: str
    profile: str
    outcome: str  # succeeded, failed, cancelled or superseded
    message: str


def login_ended(event: Any) -> LoginEnded:
    """The wire form of an :class:`sidecar.oauth.LoginEvent`."""
    return LoginEnded(event.login_id, event.provider, event.profile, event.kind, event.message)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


# A pool's credentials mostly keep their state from one status to the next (status.py
# hands out the same CredentialStatus for an untouched one): their wire form is made
# once per object (kept by identity: a status holds unhashable parts), not for each of
# 1,000 keys in every reply.
_INFOS: dict[int, tuple[CredentialStatus, CredentialInfo]] = {}


def credential_info(c: CredentialStatus) -> CredentialInfo:
    kept = _INFOS.get(id(c))
    if kept is not None and kept[0] is c:
        return kept[1]
    if len(_INFOS) >= 20_000:
        _INFOS.clear()
    info = _credential_info(c)
    _INFOS[id(c)] = (c, info)  # c kept: its id stays its own
    return info


def _credential_info(c: CredentialStatus) -> CredentialInfo:
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
        windows=[_rate_window(w) for w in c.windows],
        model_cooldowns=[
            ModelCooldownInfo(m.model, _iso(m.until) or "", m.reason, m.message or None)
            for m in c.model_cooldowns
        ],
        usage=None
        if c.usage is None
        else UsageInfo(c.usage.requests, c.usage.failures, c.counted, _iso(c.usage.last_used)),
    )


def _whole(value: float | None) -> float | None:
    # Counts arrive as floats from the headers; 50, not 50.0, on the wire.
    return int(value) if value is not None and value.is_integer() else value


def _rate_window(w: Window) -> RateWindow:
    left = w.fraction_left
    return RateWindow(
        name=w.name,
        account=w.account,
        model=w.model,
        limit=_whole(w.limit),
        remaining=_whole(w.remaining),
        utilization=w.utilization,
        status=w.status,
        reset_at=_iso(w.reset_at),
        percent_left=None if left is None else int(left * 100),
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


# -- the converter -------------------------------------------------------------


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _strict(kind: type, label: str) -> Any:
    def hook(value: Any, _: type) -> Any:
        # bool is an int in Python, but not on the wire.
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise TypeError(f"expected {label}, got {json_type(value)}")
        return value

    return hook


def _number(value: Any, _: type) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"expected a number, got {json_type(value)}")
    return float(value)


def json_type(value: Any) -> str:
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
    conv.register_unstructure_hook(CredentialInfo, _kept(unstructure_factory(CredentialInfo)))
    return conv


def _kept(unstructure: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    """``unstructure``, made once per object (credential_info hands out the same ones):
    the dict is shared, and only ever dumped."""
    made: dict[int, tuple[Any, dict[str, Any]]] = {}

    def once(obj: Any) -> dict[str, Any]:
        kept = made.get(id(obj))
        if kept is not None and kept[0] is obj:
            return kept[1]
        if len(made) >= 20_000:
            made.clear()
        wire = made[id(obj)] = (obj, unstructure(obj))  # obj kept: its id stays its own
        return wire[1]

    return once


converter = _make_converter()


def parse_params(cls: type[T], params: Any) -> T:
    """Structure raw params into ``cls``; InvalidParams naming the first bad field."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidParams("params", f"expected an object, got {json_type(params)}")
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
