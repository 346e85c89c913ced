"""Which endpoint a provider name means, from the catalog and the environment.

Imports the flavour modules (and so httpx) only when a provider is actually asked for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sidecar import catalog
from sidecar.providers._errors import ProviderConfigError
from sidecar.providers._types import Provider

__all__ = ["DEFAULT_AZURE_API_VERSION", "get_provider", "parse_deployment_map"]

# The newest GA version that streams usage (stream_options.include_usage).
DEFAULT_AZURE_API_VERSION = "2024-10-21"


def parse_deployment_map(value: str) -> dict[str, str]:
    """``"gpt-4o=prod-4o, o3=my-o3"`` → ``{"gpt-4o": "prod-4o", "o3": "my-o3"}``.

    Entries are split on commas or semicolons; one without ``=`` or with an empty side
    is skipped rather than fatal, since it can only name a model we will not be asked for.
    """
    out: dict[str, str] = {}
    for entry in re.split(r"[,;]", value):
        model, sep, deployment = entry.partition("=")
        if sep and model.strip() and deployment.strip():
            out[model.strip()] = deployment.strip()
    return out


def _env(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def _base_url(info: catalog.ProviderInfo, env: Mapping[str, str]) -> str:
    return (_env(env, f"{info.env_prefix}_BASE_URL") or info.base_url).rstrip("/")


def _azure_base_url(env: Mapping[str, str]) -> str:
    base = _env(env, "AZURE_OPENAI_BASE_URL").rstrip("/")
    if base:
        # Accept the ".../openai" form that Azure's portal shows, too: the deployment
        # path adds "/openai" itself.
        return base.removesuffix("/openai")
    resource = _env(env, "AZURE_OPENAI_RESOURCE_NAME")
    if resource:
        return f"https://{resource}.openai.azure.com"
    raise ProviderConfigError(
        "azure-openai needs AZURE_OPENAI_BASE_URL or AZURE_OPENAI_RESOURCE_NAME"
    )


def get_provider(name: str, env: Mapping[str, str]) -> Provider:
    """The provider called ``name``, its endpoint taken from ``env``.

    Base URL: ``<PREFIX>_BASE_URL`` (``ANTHROPIC_BASE_URL``, ``OPENAI_BASE_URL``, …),
    else the catalog's default. Azure: ``AZURE_OPENAI_BASE_URL`` or
    ``AZURE_OPENAI_RESOURCE_NAME``, ``AZURE_OPENAI_API_VERSION`` and
    ``AZURE_OPENAI_DEPLOYMENT_MAP``. KeyError for an unknown name, ProviderConfigError
    for an endpoint the environment does not describe.
    """
    info = catalog.get_provider(name)
    if info.api == "anthropic":
        from sidecar.providers._anthropic import AnthropicProvider

        return AnthropicProvider(name=info.name, base_url=_base_url(info, env))

    from sidecar.providers._openai import AzureConfig, OpenAIProvider

    if info.api == "azure-openai":
        azure = AzureConfig(
            api_version=_env(env, "AZURE_OPENAI_API_VERSION") or DEFAULT_AZURE_API_VERSION,
            deployments=parse_deployment_map(_env(env, "AZURE_OPENAI_DEPLOYMENT_MAP")),
        )
        return OpenAIProvider(
            name=info.name,
            base_url=_azure_base_url(env),
            max_tokens_field="max_completion_tokens",
            azure=azure,
        )
    return OpenAIProvider(
        name=info.name,
        base_url=_base_url(info, env),
        # OpenAI's reasoning models refuse max_tokens; other hosts may not know the new name.
        max_tokens_field="max_completion_tokens" if info.name == "openai" else "max_tokens",
    )
