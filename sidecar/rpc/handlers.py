"""The ``sidecar/*`` methods: one short function each, registered by :func:`method`.

A handler gets its params already structured (the wire type named at
registration, :mod:`sidecar.rpc.protocol`) and returns a wire type or None; the
registration helper parses, serializes and turns a SidecarError into the
JSON-RPC error with its code, once for every method. Logic lives in the key
pool, the engine and the login manager, not here.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pygls.exceptions import JsonRpcException

from sidecar.catalog import PROVIDERS
from sidecar.errors import InvalidParams, SidecarError

# The wire types load on the first request, not at start-up (see server.py).
if TYPE_CHECKING:
    from sidecar.rpc import protocol as p
    from sidecar.rpc.server import SidecarServer

__all__ = ["register"]

Handler = Callable[["SidecarServer", Any], Awaitable[Any]]

# (method, name of its params type in sidecar.rpc.protocol, handler)
_METHODS: list[tuple[str, str, Handler]] = []


def method(name: str, params: str) -> Callable[[Handler], Handler]:
    """Register the handler of ``name``, whose params are ``protocol.<params>``."""

    def decorate(fn: Handler) -> Handler:
        _METHODS.append((name, params, fn))
        return fn

    return decorate


def register(ls: SidecarServer) -> None:
    """Install every method on ``ls``: parse, call, serialize, map errors."""
    for name, params_name, fn in _METHODS:
        ls.feature(name)(_wrap(fn, params_name))


def _wrap(fn: Handler, params_name: str) -> Handler:
    # The first parameter is named ``ls``: that is how pygls knows to pass the server.
    async def handler(ls: SidecarServer, raw: Any) -> Any:
        from sidecar.rpc import protocol

        try:
            params = protocol.parse_params(getattr(protocol, params_name), raw)
            return protocol.to_wire(await fn(ls, params))
        except SidecarError as exc:
            raise JsonRpcException(message=exc.message, code=exc.code, data=exc.data) from None

    handler.__qualname__ = handler.__name__ = fn.__name__  # for pygls's logs
    return handler


def _provider(name: str) -> str:
    if name not in PROVIDERS:
        raise InvalidParams(
            # The value is not quoted: a key pasted into the wrong field must not come back.
            "provider",
            f"unknown provider (known: {', '.join(PROVIDERS)})",
        )
    return name


@method("sidecar/status", "StatusParams")
async def status(server: SidecarServer, params: p.StatusParams) -> p.StatusResult:
    from sidecar.rpc import protocol
    from sidecar.store.health import problem_texts

    names = [_provider(params.provider)] if params.provider else None
    statuses = server.keypool.status_all(names)
    problems = problem_texts(server.keypool.store)
    team = server.keypool.team
    state = (
        protocol.SharedStateInfo("redis", team.config.shown, team.link)
        if team is not None
        else protocol.SharedStateInfo()
    )
    return protocol.StatusResult([protocol.provider_state(s) for s in statuses], problems, state)


@method("sidecar/keyAdd", "KeyAddParams")
async def key_add(server: SidecarServer, params: p.KeyAddParams) -> p.KeyAddResult:
    from sidecar.rpc import protocol

    provider = _provider(params.provider)
    if params.key is not None:
        cred, added = server.keypool.add_key(provider, params.key)
    else:
        cred, added = server.keypool.add_login(provider)
    status = server.feed.publish(provider, force=True)
    info = next(c for c in status.credentials if c.id == cred.id)
    return protocol.KeyAddResult(
        protocol.credential_info(info), added, protocol.provider_state(status)
    )


@method("sidecar/keyList", "KeyListParams")
async def key_list(server: SidecarServer, params: p.KeyListParams) -> p.KeyListResult:
    from sidecar.rpc import protocol

    status = server.keypool.status(_provider(params.provider))
    creds = [protocol.credential_info(c) for c in status.credentials]
    return protocol.KeyListResult(status.provider, creds)


@method("sidecar/keyRemove", "KeyRemoveParams")
async def key_remove(server: SidecarServer, params: p.KeyRemoveParams) -> p.KeyRemoveResult:
    from sidecar.rpc import protocol

    provider = _provider(params.provider)
    if (params.fingerprint is None) == (params.index is None):
        raise InvalidParams("fingerprint", "give exactly one of fingerprint or index")
    before = {c.id: c for c in server.keypool.status(provider).credentials}
    removed = server.keypool.remove(provider, fingerprint=params.fingerprint, index=params.index)
    status = server.feed.publish(provider, force=True)
    return protocol.KeyRemoveResult(
        protocol.credential_info(before[removed.id]), protocol.provider_state(status)
    )


@method("sidecar/keyReset", "KeyResetParams")
async def key_reset(server: SidecarServer, params: p.KeyResetParams) -> p.ProviderState:
    from sidecar.rpc import protocol

    provider = _provider(params.provider)
    server.keypool.reset(provider)
    return protocol.provider_state(server.feed.publish(provider, force=True))


@method("sidecar/policy", "PolicyParams")
async def policy(server: SidecarServer, params: p.PolicyParams) -> p.PolicyResult:
    from sidecar.rpc import protocol

    provider = _provider(params.provider)
    chosen = (
        server.keypool.policy(provider)
        if params.policy is None
        else server.keypool.set_policy(provider, params.policy)
    )
    # The policy decides the next choice, not the one in use: the bar does not change.
    return protocol.PolicyResult(
        provider, chosen, protocol.provider_state(server.keypool.status(provider))
    )


@method("sidecar/login", "LoginParams")
async def login(server: SidecarServer, params: p.LoginParams) -> p.LoginResult:
    from sidecar.rpc import protocol

    provider = _provider(params.provider)
    started = await server.logins.start(provider, params.mode, params.profile)
    server.spawn(server.login_progress.announce(started))
    return protocol.LoginResult(started.id, started.url, started.mode, started.waiting_message)


@method("sidecar/loginComplete", "LoginCompleteParams")
async def login_complete(
    server: SidecarServer, params: p.LoginCompleteParams
) -> p.LoginCompleteResult:
    from sidecar.rotation.status import credential_state
    from sidecar.rpc import protocol

    cred = await server.logins.complete(params.login_id, params.input)
    status = server.keypool.status(cred.provider)
    info = next((c for c in status.credentials if c.id == cred.id), None)
    if info is None:  # the same token is stored elsewhere too: show the login itself
        info = credential_state(cred, None, server.keypool.clock())
    return protocol.LoginCompleteResult(
        cred.provider, protocol.credential_info(info), protocol.provider_state(status)
    )


@method("sidecar/loginCancel", "LoginCancelParams")
async def login_cancel(server: SidecarServer, params: p.LoginCancelParams) -> p.LoginCancelResult:
    from sidecar.rpc import protocol

    return protocol.LoginCancelResult(await server.logins.cancel(params.login_id))


@method("sidecar/logout", "LogoutParams")
async def logout(server: SidecarServer, params: p.LogoutParams) -> p.LogoutResult:
    from sidecar.rotation.status import credential_state
    from sidecar.rpc import protocol

    provider = _provider(params.provider)
    removed = server.logins.logout(provider, params.profile)
    status = server.feed.publish(provider, force=True)
    info = None
    if removed is not None:
        info = protocol.credential_info(credential_state(removed, None, server.keypool.clock()))
    return protocol.LogoutResult(protocol.provider_state(status), info)


@method("sidecar/models", "StatusParams")
async def models(server: SidecarServer, params: p.StatusParams) -> Any:
    from sidecar.models import list_models

    names = [_provider(params.provider)] if params.provider else list(PROVIDERS)
    return await list_models(server.engine, names, on_status=server.feed.publish)


@method("sidecar/stream", "StreamParams")
async def stream(server: SidecarServer, params: p.StreamParams) -> p.StreamResult:
    from sidecar.rpc.streams import fallback_note, stream_request, stream_result
    from sidecar.rpc.wire import WireSink, sender

    provider = _provider(params.provider)
    request = stream_request(params)
    stream_id = params.stream_id or f"s-{uuid.uuid4().hex[:12]}"
    sink = WireSink(stream_id, sender(server.protocol))
    try:
        outcome = await server.engine.stream(
            provider, request, sink, on_status=server.feed.publish, profile=params.profile
        )
    finally:
        sink.flush()  # every delta goes out before the answer (or the error)
    server.feed.fell_back(provider, fallback_note(outcome))
    return stream_result(sink.stream_id, outcome, content=not params.omit_content)
