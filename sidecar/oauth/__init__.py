"""OAuth logins (Claude Pro/Max): PKCE with a loopback callback or a pasted code,
token refresh that never races another process, and logout.

- :class:`LoginManager`: logins in progress (``sidecar/login``, ``loginComplete``,
  ``loginCancel``, ``logout`` and ``llm-sidecar login``/``logout``).
- :class:`TokenRefresher`: the engine's hooks, ``ensure_fresh`` before a login is
  used and ``refresh`` after a 401 on it.
- :class:`TokenClient`: the token endpoint (code exchange, refresh), with retries.

Every URL is overridable through the environment (``LLM_SIDECAR_ANTHROPIC_*``);
see :func:`oauth_config`. httpx is imported only when a token request is made.
"""

from sidecar.oauth._callback import CallbackServer
from sidecar.oauth._config import (
    ANTHROPIC_CLIENT_ID,
    DEFAULT_CALLBACK_PORT,
    OAUTH_PROVIDERS,
    OAuthConfig,
    oauth_config,
)
from sidecar.oauth._login import Login, LoginEvent, LoginManager, profile_id
from sidecar.oauth._pkce import (
    PKCE,
    PastedCode,
    authorize_url,
    challenge_of,
    new_pkce,
    parse_pasted,
)
from sidecar.oauth._refresh import REFRESH_MARGIN, TokenRefresher, is_permanent
from sidecar.oauth._tokens import TokenClient, TokenSet, retry_after_seconds, token_set

__all__ = [
    "ANTHROPIC_CLIENT_ID",
    "DEFAULT_CALLBACK_PORT",
    "OAUTH_PROVIDERS",
    "PKCE",
    "REFRESH_MARGIN",
    "CallbackServer",
    "Login",
    "LoginEvent",
    "LoginManager",
    "OAuthConfig",
    "PastedCode",
    "TokenClient",
    "TokenRefresher",
    "TokenSet",
    "authorize_url",
    "challenge_of",
    "is_permanent",
    "new_pkce",
    "oauth_config",
    "parse_pasted",
    "profile_id",
    "retry_after_seconds",
    "token_set",
]
