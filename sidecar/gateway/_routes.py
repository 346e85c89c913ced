"""Where a gateway request goes: the provider from the first path segment, the upstream
URL from the catalog and the environment (the same ``get_provider`` the engine uses)."""

from __future__ import annotations

import re
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

# Requests worth replaying on the next credential: answers and reads, named by their
# endpoint (see Route.endpoint). Any other path (batches, files, …) may have side
# effects and goes out once.
_REPLAYED_POST = frozenset(
    {"v1/messages", "v1/messages/count_tokens", "chat/completions", "responses"}
)
_SLASHES = re.compile(r"/{2,}")
# The paths Azure's own clients write under the resource: the deployment form
# (AzureOpenAI, LiteLLM's azure/, Continue's azure provider), the v1 API, the rest.
_AZURE_OWN = re.compile(r"openai/(?:deployments/[^/]+/|v1/)?(?P<endpoint>.+)")


@attrs.frozen
class Route:
    provider: str
    api: catalog.Api
    rest: str  # the path after the provider, without the leading slash: "v1/messages"
    method: str

    @property
    def endpoint(self) -> str:
        """What the request asks for, whichever way the client wrote its base URL.

        Anthropic's paths are the provider's own (``v1/messages``). An OpenAI-compatible
        host's base URL ends in its version, so the client's ``v1/`` is optional
        (``/openai/chat/completions`` is the same request); Azure's clients may also
        write the resource's own path (``openai/deployments/<name>/chat/completions``).
        """
        if self.api == "anthropic":
            return self.rest
        if self.api == "azure-openai" and (own := _AZURE_OWN.fullmatch(self.rest)):
            return own["endpoint"]
        return self.rest.removeprefix("v1/")

    @property
    def replay(self) -> bool:
        return self.method == "GET" or (self.method == "POST" and self.endpoint in _REPLAYED_POST)

    @property
    def stream_format(self) -> str:
        """How a streamed answer's events read: ``anthropic``, ``openai`` (chat
        completions) or ``responses`` (OpenAI's Responses API)."""
        if self.api == "anthropic":
            return "anthropic"
        return "responses" if self.endpoint == "responses" else "openai"

    @property
    def shape(self) -> str:
        """Whose error body shape the client expects: ``anthropic`` or ``openai``."""
        return "anthropic" if self.api == "anthropic" else "openai"

    def upstream_url(self, env: Mapping[str, str], model: str | None, query: str) -> str:
        provider = get_provider(self.provider, env)
        url = self._url(provider, model, query)
        if query:
            url += ("&" if "?" in url else "?") + query
        return url

    def _url(self, provider: Provider, model: str | None, query: str) -> str:
        if isinstance(provider, AnthropicProvider):
            return f"{provider.base_url}/{self.rest}"
        assert isinstance(provider, OpenAIProvider)
        # OpenAI-compatible base URLs already end in their version (…/v1, …/v1beta/openai):
        # the client's /v1 is the gateway's convention, not part of the upstream path.
        if provider.azure is None:
            return f"{provider.base_url}/{self.endpoint}"
        if _AZURE_OWN.fullmatch(self.rest):
            # The client wrote Azure's own path and its own api-version: as it is.
            return f"{provider.base_url}/{self.rest}"
        # Azure wants an api-version: the client's when it gave one, else the configured.
        theirs = "api-version=" in query
        if self.endpoint == "chat/completions":
            url = provider.url_for(model or "")
            return url.partition("?")[0] if theirs else url
        if theirs:
            return f"{provider.base_url}/openai/{self.endpoint}"
        version = quote(provider.azure.api_version, safe="")
        return f"{provider.base_url}/openai/{self.endpoint}?api-version={version}"


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
    """``/{provider}/{rest}`` → a Route; None for an unknown provider or a bare path.

    Runs of slashes count as one: a tool that joins ``base + "/v1/…"`` as strings sends
    ``/openai//v1/…`` when the user's base URL ends in a slash.
    """
    provider, _, rest = _SLASHES.sub("/", path).lstrip("/").partition("/")
    info = catalog.PROVIDERS.get(provider)
    if info is None or not rest:
        return None
    return Route(provider=provider, api=info.api, rest=rest.rstrip("/"), method=method)


def shape_for_path(path: str) -> str:
    """The error shape for a request the gateway cannot route: guessed from its path."""
    return "anthropic" if "/messages" in path or path.startswith("/anthropic") else "openai"
