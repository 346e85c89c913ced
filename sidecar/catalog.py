"""The providers llm-sidecar knows: their names, environment variables and API flavour.

Pure data, imported at start-up: no HTTP here.
"""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = ["PROVIDERS", "ProviderInfo", "get_provider", "provider_names"]

Api = Literal["anthropic", "openai", "azure-openai"]


@attrs.frozen
class ProviderInfo:
    name: str
    env_prefix: str  # ANTHROPIC → ANTHROPIC_API_KEY, ANTHROPIC_API_KEYS, ANTHROPIC_BASE_URL
    api: Api
    base_url: str  # default; `<PREFIX>_BASE_URL` overrides
    extra_env: tuple[str, ...] = ()  # further single-key variables, lowest priority
    default_model: str | None = None  # what `llm-sidecar ask` uses without --model


PROVIDERS: dict[str, ProviderInfo] = {
    p.name: p
    for p in (
        ProviderInfo(
            "anthropic",
            "ANTHROPIC",
            "anthropic",
            "https://api.anthropic.com",
            ("ANTHROPIC_OAUTH_TOKEN",),
            "claude-sonnet-4-5",
        ),
        ProviderInfo(
            "openai", "OPENAI", "openai", "https://api.openai.com/v1", default_model="gpt-4o-mini"
        ),
        ProviderInfo("azure-openai", "AZURE_OPENAI", "azure-openai", ""),
        ProviderInfo(
            "google",
            "GEMINI",
            "openai",
            "https://generativelanguage.googleapis.com/v1beta/openai",
            ("GOOGLE_API_KEY",),
        ),
        ProviderInfo("mistral", "MISTRAL", "openai", "https://api.mistral.ai/v1"),
        ProviderInfo("groq", "GROQ", "openai", "https://api.groq.com/openai/v1"),
        ProviderInfo("cerebras", "CEREBRAS", "openai", "https://api.cerebras.ai/v1"),
        ProviderInfo("xai", "XAI", "openai", "https://api.x.ai/v1"),
        ProviderInfo("openrouter", "OPENROUTER", "openai", "https://openrouter.ai/api/v1"),
        ProviderInfo(
            "vercel-ai-gateway", "AI_GATEWAY", "openai", "https://ai-gateway.vercel.sh/v1"
        ),
        ProviderInfo("zai", "ZAI", "openai", "https://api.z.ai/api/paas/v4"),
        ProviderInfo("opencode", "OPENCODE", "openai", "https://opencode.ai/zen/v1"),
        ProviderInfo("minimax", "MINIMAX", "openai", "https://api.minimax.io/v1"),
        ProviderInfo("minimax-cn", "MINIMAX_CN", "openai", "https://api.minimaxi.com/v1"),
    )
}


def provider_names() -> list[str]:
    return list(PROVIDERS)


def get_provider(name: str) -> ProviderInfo:
    """The provider called ``name``; KeyError with the known names otherwise."""
    try:
        return PROVIDERS[name]
    except KeyError:
        known = ", ".join(PROVIDERS)
        raise KeyError(f"unknown provider (known: {known})") from None
