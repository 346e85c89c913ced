"""Where the OAuth login of each provider goes, and the knobs a test or a user may turn.

Only Anthropic (Claude Pro/Max) has an OAuth login. Every URL can be pointed elsewhere
through the environment (tests point them at ``sidecar.fake``), so nothing here is
hard-wired to the real endpoints.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import attrs

from sidecar.errors import InvalidParams, LoginError
from sidecar.providers._config import INSECURE_HTTP_ENV, cleartext_problem
from sidecar.settings import (
    OAUTH_CALLBACK_PORT_ENV,
    OAUTH_MAX_RETRY_WAIT_ENV,
    OAUTH_TIMEOUT_ENV,
    BadSetting,
    read_port,
    read_seconds,
)

__all__ = [
    "ANTHROPIC_CLIENT_ID",
    "DEFAULT_CALLBACK_PORT",
    "DEFAULT_TIMEOUT",
    "OAUTH_PROVIDERS",
    "OAuthConfig",
    "cleartext_token_urls",
    "oauth_config",
]

ANTHROPIC_CLIENT_ID = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"  # the public client id
ANTHROPIC_AUTHORIZE_URL = "https://claude.ai/oauth/authorize"
ANTHROPIC_TOKEN_URL = "https://platform.claude.com/v1/oauth/token"
ANTHROPIC_MANUAL_REDIRECT_URL = "https://platform.claude.com/oauth/code/callback"
ANTHROPIC_SCOPES = "org:create_api_key user:profile user:inference"
# The token endpoint receives authorization codes and refresh tokens: like a base URL, it
# must not be plain http:// to another machine unless the user opts in.
TOKEN_URL_ENV = "LLM_SIDECAR_ANTHROPIC_TOKEN_URL"

DEFAULT_CALLBACK_PORT = 53692  # the port public tools use; a free one when it is busy
DEFAULT_TIMEOUT = 300.0  # seconds a login waits for the user
DEFAULT_MAX_RETRY_WAIT = 10.0  # cap on one Retry-After wait at the token endpoint
DEFAULT_RETRIES = 2  # retries of a token request after a 429, a 5xx or a network error

OAUTH_PROVIDERS = ("anthropic",)


@attrs.frozen
class OAuthConfig:
    provider: str
    client_id: str
    authorize_url: str
    token_url: str
    manual_redirect_url: str
    scopes: str
    callback_port: int = DEFAULT_CALLBACK_PORT
    port_explicit: bool = False  # the user named the port: never swap it for another
    timeout: float = DEFAULT_TIMEOUT
    max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT
    retries: int = DEFAULT_RETRIES
    remote: bool = False  # an SSH session: the user's browser cannot reach our loopback


def _bad_setting(provider: str, message: str) -> LoginError:
    return LoginError(message, {"provider": provider, "reason": "configuration"})


def _seconds(provider: str, env: Mapping[str, str], name: str, default: float) -> float:
    try:
        return read_seconds(env, name, default)
    except BadSetting as bad:
        raise _bad_setting(provider, bad.message) from None


def cleartext_token_urls(env: Mapping[str, str]) -> Iterator[tuple[str, bool]]:
    """The token endpoint, when it would receive tokens in clear text, as (why, allowed)
    like :func:`sidecar.providers._config.cleartext_base_urls`. For ``llm-sidecar doctor``."""
    problem = cleartext_problem(env.get(TOKEN_URL_ENV, "").strip(), TOKEN_URL_ENV)
    if problem is not None:
        yield problem, env.get(INSECURE_HTTP_ENV, "").strip() == "1"


def oauth_config(provider: str, env: Mapping[str, str]) -> OAuthConfig:
    """The OAuth settings of ``provider``; InvalidParams when it has no OAuth login.

    ``env`` is the sidecar's environment (the process's, plus the home's ``.env``).
    """
    if provider not in OAUTH_PROVIDERS:
        raise InvalidParams(
            "provider",
            f"{provider} has no OAuth login (only {', '.join(OAUTH_PROVIDERS)} has): "
            "add an API key instead",
        )
    try:
        explicit_port = read_port(env, OAUTH_CALLBACK_PORT_ENV)
    except BadSetting as bad:
        raise _bad_setting(provider, bad.message) from None
    port = DEFAULT_CALLBACK_PORT if explicit_port is None else explicit_port
    remote = any(env.get(name, "").strip() for name in ("SSH_CONNECTION", "SSH_TTY"))
    for why, allowed in cleartext_token_urls(env):
        if not allowed:
            raise _bad_setting(provider, why.replace("the key", "login tokens"))
    return OAuthConfig(
        provider=provider,
        client_id=ANTHROPIC_CLIENT_ID,
        authorize_url=env.get("LLM_SIDECAR_ANTHROPIC_AUTHORIZE_URL") or ANTHROPIC_AUTHORIZE_URL,
        token_url=env.get(TOKEN_URL_ENV) or ANTHROPIC_TOKEN_URL,
        manual_redirect_url=(
            env.get("LLM_SIDECAR_ANTHROPIC_MANUAL_REDIRECT_URL") or ANTHROPIC_MANUAL_REDIRECT_URL
        ),
        scopes=ANTHROPIC_SCOPES,
        callback_port=port,
        port_explicit=explicit_port is not None,
        timeout=_seconds(provider, env, OAUTH_TIMEOUT_ENV, DEFAULT_TIMEOUT),
        max_retry_wait=_seconds(provider, env, OAUTH_MAX_RETRY_WAIT_ENV, DEFAULT_MAX_RETRY_WAIT),
        remote=remote,
    )
