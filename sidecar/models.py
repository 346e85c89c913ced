"""``sidecar/models``: which models a provider offers, for an editor's model picker.

Where the provider has a model-list endpoint (Anthropic ``GET /v1/models``,
OpenAI-compatible hosts ``GET {base_url}/models``) it is asked with the pool's
credential, failing over exactly as a stream does (429/529: the next key; 401: the
key is evicted or its login refreshed), because :class:`~sidecar.rotation.failover.Failover`
makes those decisions for both. A successful list is cached per provider for
:data:`MODELS_TTL` seconds, so a picker opened twice does not spend a request.

Otherwise the known models: the catalog's default model, then the price table's
entries for the provider (``source: "known"``). That is the answer for a provider
without credentials, for Azure (it serves deployments, not a model list), and when
the listing failed; the failure's message is then in ``errors`` so the editor can
say why the list is short.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import attrs

from sidecar import catalog, pricing
from sidecar.errors import SidecarError

if TYPE_CHECKING:
    import httpx

    from sidecar.credentials import Credential
    from sidecar.engine import Engine
    from sidecar.providers import Provider

__all__ = ["MODELS_TTL", "ModelInfo", "ModelList", "known_models", "list_models"]

MODELS_TTL = 300.0  # seconds a provider's own list is reused
MAX_MODELS = 1000  # Anthropic's page size limit; nobody offers more

Source = Literal["provider", "known"]


@attrs.frozen
class ModelInfo:
    provider: str
    id: str
    source: Source


@attrs.frozen
class ModelError:
    provider: str
    message: str


@attrs.frozen
class ModelList:
    models: list[ModelInfo]
    errors: list[ModelError] = attrs.field(factory=list)


# provider → (monotonic time fetched, its list); the process's lifetime, TTL-bounded.
_cache: dict[str, tuple[float, list[ModelInfo]]] = {}


def _family(provider: str, price_key: str) -> bool:
    if provider == "anthropic":
        return price_key.startswith("claude-")
    if provider == "openai":
        return not price_key.startswith("claude-")
    return False


def known_models(provider: str) -> list[ModelInfo]:
    """The catalog's default model, then the price table's models of ``provider``.

    A price key that only prefixes another (``claude-opus-4`` before
    ``claude-opus-4-1``) is a family, not a model id, and is left out.
    """
    keys = list(pricing.BUILTIN_PRICES)
    ids: list[str] = []
    default = catalog.PROVIDERS[provider].default_model
    if default:
        ids.append(default)
    for key in keys:
        family = any(other.startswith(key + "-") for other in keys if other != key)
        if _family(provider, key) and not family and key not in ids:
            ids.append(key)
    return [ModelInfo(provider, i, "known") for i in ids]


async def list_models(
    engine: Engine,
    providers: list[str],
    *,
    on_status: Callable[[str], object],
    now: Callable[[], float] = time.monotonic,
) -> ModelList:
    """The models of each of ``providers``, in that order."""
    import asyncio

    lists = await asyncio.gather(*(_one(engine, p, on_status, now) for p in providers))
    result = ModelList([])
    for models, error in lists:
        result.models.extend(models)
        if error is not None:
            result.errors.append(error)
    return result


async def _one(
    engine: Engine, provider: str, on_status: Callable[[str], object], now: Callable[[], float]
) -> tuple[list[ModelInfo], ModelError | None]:
    cached = _cache.get(provider)
    if cached is not None and now() - cached[0] < MODELS_TTL:
        return cached[1], None
    from sidecar.providers import ProviderConfigError, get_provider

    try:
        upstream = get_provider(provider, engine.settings.env)
    except ProviderConfigError as exc:  # Azure without an endpoint
        return known_models(provider), ModelError(provider, str(exc))
    if getattr(upstream, "azure", None) is not None or not engine.keypool.pool(provider):
        return known_models(provider), None
    try:
        ids = await _with_failover(engine, provider, upstream, on_status)
    except SidecarError as exc:  # every key refused, rate limited, or the host is down
        return known_models(provider), ModelError(provider, exc.message)
    models = [ModelInfo(provider, i, "provider") for i in ids]
    _cache[provider] = (now(), models)
    return models, None


async def _with_failover(
    engine: Engine, provider: str, upstream: Provider, on_status: Callable[[str], object]
) -> list[str]:
    from sidecar.rotation.failover import Failover

    failover = Failover(
        engine.keypool,
        provider,
        profile=None,
        refresher=engine.refresher,
        ensure_fresh=engine.ensure_fresh,
        max_cooldown_wait=engine.max_cooldown_wait,
        on_status=on_status,
    )
    cred, ids = await failover.run(lambda cred: _fetch(engine.client, upstream, cred))
    await failover.succeeded(cred)
    return ids


def _request(upstream: Provider, cred: Credential) -> tuple[str, dict[str, str]]:
    from sidecar.providers._anthropic import AnthropicProvider, build_headers
    from sidecar.providers._openai import OpenAIProvider

    if isinstance(upstream, AnthropicProvider):
        return f"{upstream.base_url}/v1/models?limit={MAX_MODELS}", build_headers(cred)
    assert isinstance(upstream, OpenAIProvider)
    return f"{upstream.base_url}/models", upstream.headers_for(cred)


async def _fetch(client: httpx.AsyncClient, upstream: Provider, cred: Credential) -> list[str]:
    """The ids of the provider's list; UpstreamFailure (secret redacted) otherwise."""
    import httpx

    from sidecar.providers import UpstreamFailure
    from sidecar.providers._bounded import BodyError
    from sidecar.providers._errors import (
        local_failure,
        transport_failure,
        unsendable_credential,
    )
    from sidecar.providers._sse import USER_AGENT, _sendable
    from sidecar.rotation.classify import parse_failure

    secret = cred.secret
    if not _sendable(secret):
        raise unsendable_credential()
    url, headers = _request(upstream, cred)
    headers = {**headers, "accept": "application/json", "user-agent": USER_AGENT}
    try:
        response = await client.get(url, headers=headers)
    except httpx.TransportError as exc:
        raise transport_failure(exc, secret, mid_stream=False) from exc
    except BodyError as exc:  # too large, or not decodable: not a list we can use
        failure = local_failure("unexpected_response", str(exc)[:200])
        raise UpstreamFailure(failure, mid_stream=False) from None
    if not response.is_success:
        failure = parse_failure(
            response.status_code,
            response.headers,
            response.content,
            now=time.time(),
            secrets=[secret],
        )
        raise UpstreamFailure(failure, mid_stream=False)
    ids = _ids(response)
    if ids is None:
        failure = local_failure("unexpected_response", "the model list is not in a known format")
        raise UpstreamFailure(failure, mid_stream=False, retryable=False)
    return ids


def _ids(response: httpx.Response) -> list[str] | None:
    """``data[].id`` of either flavour's list, in the provider's order; None if absent."""
    try:
        document: Any = response.json()
    except ValueError:
        return None
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list):
        return None
    ids = [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
    return ids[:MAX_MODELS]
