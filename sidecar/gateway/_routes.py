"""Where a gateway request goes: the provider from the first path segment, the upstream
URL from the catalog and the environment (the same ``get_provider`` the engine uses)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

import attrs

from sidecar import catalog
from sidecar.credentials import Credential
from sidecar.providers import Provider, get_provider
from sidecar.providers._anthropic import AnthropicProvider
from sidecar.providers._anthropic import build_headers as anthropic_headers
from sidecar.providers._openai import OpenAIProvider

__all__ = ["Route", "credential_headers", "parse_route", "shape_for_path"]

# Requests worth replaying on the next credential: answers and reads. Any other path
# (batches, files, …) may have side effects and goes out once.
_REPLAYED_POST = frozenset({"v1/messages", "v1/messages/count_tokens", "v1/chat/completions"})


@attrs.frozen
class Route:
    provider: str
    api: catalog.Api
    rest: str  # the path after the provider, without the leading slash: "v1/messages"
    method: str

    @property
    def replay(self) -> bool:
        return self.method == "GET" or (self.method == "POST" and self.rest in _REPLAYED_POST)

    @property
    def shape(self) -> str:
        """Whose error body shape the client expects: ``anthropic`` or ``openai``."""
        return "anthropic" if self.api == "anthropic" else "openai"

    def upstream_url(self, env: Mapping[str, str], model: str | None, query: str) -> str:
        provider = get_provider(self.provider, env)
        url = _url(provider, self.rest, model)
        if query:
            url += ("&" if "?" in url else "?") + query
        return url


def _url(provider: Provider, rest: str, model: str | None) -> str:
    if isinstance(provider, AnthropicProvider):
        return f"{provider.base_url}/{rest}"
    assert isinstance(provider, OpenAIProvider)
    # OpenAI-compatible base URLs already end in their version (…/v1, …/v1beta/openai):
    # the client's /v1 is the gateway's convention, not part of the upstream path.
    tail = rest.removeprefix("v1/")
    if provider.azure is None:
        return f"{provider.base_url}/{tail}"
    if tail == "chat/completions":
        return provider.url_for(model or "")
    version = quote(provider.azure.api_version, safe="")
    return f"{provider.base_url}/openai/{tail}?api-version={version}"


def credential_headers(
    route: Route, env: Mapping[str, str], cred: Credential, client_beta: str | None
) -> dict[str, str]:
    """The credential's headers, built by the provider code the sidecar's own requests use.

    An OAuth bearer needs Anthropic's OAuth beta; the client's own betas (Claude Code
    sends several) are kept beside it.
    """
    provider = get_provider(route.provider, env)
    if isinstance(provider, AnthropicProvider):
        headers = anthropic_headers(cred)
        ours = headers.get("anthropic-beta")
        if client_beta:
            betas = [b.strip() for b in client_beta.split(",") if b.strip()]
            if ours and ours not in betas:
                betas.append(ours)
            headers["anthropic-beta"] = ",".join(betas)
        return headers
    assert isinstance(provider, OpenAIProvider)
    return provider.headers_for(cred)


def parse_route(path: str, method: str) -> Route | None:
    """``/{provider}/{rest}`` → a Route; None for an unknown provider or a bare path."""
    provider, _, rest = path.lstrip("/").partition("/")
    info = catalog.PROVIDERS.get(provider)
    if info is None or not rest:
        return None
    return Route(provider=provider, api=info.api, rest=rest.rstrip("/"), method=method)


def shape_for_path(path: str) -> str:
    """The error shape for a request the gateway cannot route: guessed from its path."""
    return "anthropic" if "/messages" in path or path.startswith("/anthropic") else "openai"
