"""Which endpoint a provider name means, from the catalog and the environment.

Imports the flavour modules (and so httpx) only when a provider is actually asked for.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator, Mapping

from sidecar import catalog
from sidecar.loopback import is_loopback
from sidecar.providers._errors import ProviderConfigError
from sidecar.providers._types import Provider

__all__ = [
    "DEFAULT_AZURE_API_VERSION",
    "INSECURE_HTTP_ENV",
    "cleartext_base_urls",
    "get_provider",
    "parse_deployment_map",
]

# The opt-in for sending keys over plain http:// to another machine (a trusted LAN proxy).
INSECURE_HTTP_ENV = "LLM_SIDECAR_ALLOW_INSECURE_HTTP"

# The newest GA version that streams usage (stream_options.include_usage).
DEFAULT_AZURE_API_VERSION = "2024-10-21"


# Both names of the model → deployment map: ours, and pi's (so a pi set-up works as is).
# Read in this order; an entry of a later one wins over the same model in an earlier one.
DEPLOYMENT_MAP_VARIABLES = ("AZURE_OPENAI_DEPLOYMENT_NAME_MAP", "AZURE_OPENAI_DEPLOYMENT_MAP")


def parse_deployment_map(value: str, variable: str = "the deployment map") -> dict[str, str]:
    """``"gpt-4o=prod-4o, o3=my-o3"`` → ``{"gpt-4o": "prod-4o", "o3": "my-o3"}``.

    Entries are split on commas or semicolons; empty ones (a trailing comma) are
    ignored. An entry without ``=`` or with an empty side is a ProviderConfigError
    naming ``variable``: skipping it would silently send that model to a deployment
    of its own name, which is a confusing 404 far from the typo.
    """
    out: dict[str, str] = {}
    for number, entry in enumerate(re.split(r"[,;]", value), 1):
        if not entry.strip():
            continue
        model, sep, deployment = entry.partition("=")
        if not (sep and model.strip() and deployment.strip()):
            # The entry is not quoted: whatever was pasted there stays out of logs.
            raise ProviderConfigError(
                f"{variable} cannot be read: entry {number} is not model=deployment "
                "(expected e.g. gpt-4o=my-deployment,o3=my-o3)"
            )
        out[model.strip()] = deployment.strip()
    return out


def _deployments(env: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for variable in DEPLOYMENT_MAP_VARIABLES:
        out.update(parse_deployment_map(_env(env, variable), variable))
    return out


def _env(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def cleartext_problem(url: str, variable: str) -> str | None:
    """Why ``url`` would send keys in clear text (plain http:// to a host that is not this
    machine), or None. Only the scheme, host and port are quoted: a URL may carry a
    proxy's password."""
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return None  # not a URL httpx could use either: it fails with its own error
    if parts.scheme.lower() != "http" or is_loopback(host):
        return None
    shown = f"http://{host}" + (f":{port}" if port is not None else "")
    return (
        f"{variable} is {shown}: plain http:// to another machine would send the key in "
        f"clear text; use https://, or set {INSECURE_HTTP_ENV}=1 if that network is trusted"
    )


def _insecure_allowed(env: Mapping[str, str]) -> bool:
    return _env(env, INSECURE_HTTP_ENV) == "1"


def _checked(url: str, variable: str, env: Mapping[str, str]) -> str:
    problem = cleartext_problem(url, variable)
    if problem is not None and not _insecure_allowed(env):
        raise ProviderConfigError(problem)
    return url


def cleartext_base_urls(env: Mapping[str, str]) -> Iterator[tuple[str, bool]]:
    """Each configured base URL that would send keys in clear text, as (why, allowed),
    ``allowed`` telling whether the user opted in with ``LLM_SIDECAR_ALLOW_INSECURE_HTTP``.
    For ``llm-sidecar doctor``."""
    for variable in dict.fromkeys(f"{i.env_prefix}_BASE_URL" for i in catalog.PROVIDERS.values()):
        problem = cleartext_problem(_env(env, variable), variable)
        if problem is not None:
            yield problem, _insecure_allowed(env)


def _base_url(info: catalog.ProviderInfo, env: Mapping[str, str]) -> str:
    variable = f"{info.env_prefix}_BASE_URL"
    base = (_env(env, variable) or info.base_url).rstrip("/")
    return _checked(base, variable, env)


def _azure_base_url(env: Mapping[str, str]) -> str:
    base = _env(env, "AZURE_OPENAI_BASE_URL").rstrip("/")
    if base:
        _checked(base, "AZURE_OPENAI_BASE_URL", env)
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
    ``AZURE_OPENAI_DEPLOYMENT_MAP`` (or pi's ``AZURE_OPENAI_DEPLOYMENT_NAME_MAP``).
    KeyError for an unknown name, ProviderConfigError for an endpoint the
    environment does not describe or a deployment map that cannot be read.
    """
    info = catalog.get_provider(name)
    if info.api == "anthropic":
        from sidecar.providers._anthropic import AnthropicProvider

        return AnthropicProvider(name=info.name, base_url=_base_url(info, env))

    from sidecar.providers._openai import AzureConfig, OpenAIProvider

    if info.api == "azure-openai":
        azure = AzureConfig(
            api_version=_env(env, "AZURE_OPENAI_API_VERSION") or DEFAULT_AZURE_API_VERSION,
            deployments=_deployments(env),
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
