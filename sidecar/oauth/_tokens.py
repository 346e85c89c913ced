"""The token endpoint: exchanging an authorization code and refreshing a login.

Synchronous on purpose: a refresh runs in a worker thread while it holds the
login's refresh lock (see :mod:`sidecar.oauth._refresh`), and the CLI is
synchronous anyway; the server runs an exchange with ``asyncio.to_thread``.
httpx is imported here, inside the functions, so the server starts without it.

Failures become :class:`LoginError` named for what they are, with
``data = {"provider", "reason"}``: ``invalid_grant`` (log in again),
``rate_limited`` (retry in N s), ``server_error``, ``network``, ``bad_response``,
or the endpoint's own error code. A 429, a 5xx or a network error is retried a
couple of times first, waiting what Retry-After says, capped.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from sidecar import __version__
from sidecar.errors import LoginError
from sidecar.oauth._config import OAuthConfig

if TYPE_CHECKING:
    import httpx

__all__ = ["EXPIRY_MARGIN", "TokenClient", "TokenSet", "retry_after_seconds", "token_set"]

EXPIRY_MARGIN = 300.0  # stored expiry = now + expires_in − 5 minutes
REQUEST_TIMEOUT = 15.0  # seconds per token request
BACKOFF = (1.0, 2.0, 4.0)  # waits without a Retry-After, capped like one


@attrs.frozen
class TokenSet:
    access: str = attrs.field(repr=False)
    refresh: str | None = attrs.field(repr=False)
    expires_at: float | None  # epoch seconds, margin applied; None: the endpoint did not say


def token_set(body: Any, now: float, old_refresh: str | None = None) -> TokenSet:
    """Read a token response; ValueError when it is not one.

    A response without a refresh token keeps the old one: the endpoint only sends
    a new one when it rotates it.
    """
    if not isinstance(body, Mapping):
        raise ValueError("the token response is not a JSON object")
    access = body.get("access_token")
    if not isinstance(access, str) or not access or any(ch.isspace() for ch in access):
        raise ValueError("the token response has no access_token")
    refresh = body.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        refresh = old_refresh
    expires_in = body.get("expires_in")
    expires_at = None
    if (
        isinstance(expires_in, int | float)
        and not isinstance(expires_in, bool)
        and math.isfinite(expires_in)
        and expires_in >= 0
    ):
        # Refresh a little early rather than send a request on a dying token;
        # never earlier than now, so a short-lived token is still usable once.
        expires_at = now + max(float(expires_in) - EXPIRY_MARGIN, 0.0)
    return TokenSet(access, refresh, expires_at)


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def _safe_text(text: object, limit: int = 160) -> str:
    # Error descriptions come from the endpoint: keep them short and plain, and
    # drop anything that looks like a token should an endpoint ever echo one.
    cleaned = re.sub(r"[^\w .,:;()'/-]", "", str(text))
    cleaned = re.sub(r"\S{40,}", "…", cleaned)
    return cleaned[:limit].strip()


class TokenClient:
    """Talks to one provider's token endpoint."""

    def __init__(
        self,
        config: OAuthConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._transport = transport
        self._sleep = sleep
        self._clock = clock

    def exchange(self, code: str, state: str, verifier: str, redirect_uri: str) -> TokenSet:
        """Trade an authorization code for tokens (the same redirect_uri as the authorize step)."""
        body = {
            "grant_type": "authorization_code",
            "client_id": self.config.client_id,
            "code": code,
            "state": state,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        return self._tokens(body, "the sign-in code", None)

    def refresh(self, refresh_token: str) -> TokenSet:
        """A new access token (and usually a new refresh token: the old one is then spent)."""
        # No scope: the endpoint answers invalid_scope to a refresh that names one.
        body = {
            "grant_type": "refresh_token",
            "client_id": self.config.client_id,
            "refresh_token": refresh_token,
        }
        return self._tokens(body, "the login", refresh_token)

    # -- one request, with retries --

    def _tokens(self, body: dict[str, str], what: str, old_refresh: str | None) -> TokenSet:
        import httpx

        provider = self.config.provider
        attempts = self.config.retries + 1
        with httpx.Client(
            transport=self._transport,
            timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=10.0),
            headers={"user-agent": f"llm-sidecar/{__version__}", "accept": "application/json"},
        ) as client:
            for attempt in range(attempts):
                last = attempt == attempts - 1
                try:
                    response = client.post(self.config.token_url, json=body)
                except httpx.TransportError as exc:
                    if last:
                        raise self._error(
                            f"could not reach the {provider} token endpoint "
                            f"({type(exc).__name__}); check the connection and try again",
                            "network",
                        ) from None
                    self._sleep(min(BACKOFF[attempt], self.config.max_retry_wait))
                    continue
                status = response.status_code
                if status == 429 or status >= 500:
                    wait = retry_after_seconds(response.headers.get("retry-after"), self._clock())
                    if last:
                        raise self._unavailable(status, wait)
                    self._sleep(
                        min(BACKOFF[attempt] if wait is None else wait, self.config.max_retry_wait)
                    )
                    continue
                return self._read(response, what, old_refresh)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _read(self, response: httpx.Response, what: str, old_refresh: str | None) -> TokenSet:
        provider = self.config.provider
        try:
            data = response.json()
        except (ValueError, UnicodeDecodeError):
            data = None
        if response.is_success:
            try:
                return token_set(data, self._clock(), old_refresh)
            except ValueError as exc:
                raise self._error(
                    f"the {provider} token endpoint sent an unusable answer: {exc}",
                    "bad_response",
                ) from None
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):  # some endpoints nest {"error": {"type", "message"}}
            error = error.get("type")
        code = _safe_text(error, 40).replace(" ", "_") if isinstance(error, str) else ""
        detail = data.get("error_description") if isinstance(data, dict) else None
        if code == "invalid_grant":
            raise self._error(
                f"{what} was refused by {provider} (invalid_grant: expired, revoked or "
                "already used): log in again",
                "invalid_grant",
            )
        reason = code or f"http_{response.status_code}"
        message = f"the {provider} token endpoint refused {what} (HTTP {response.status_code}"
        message += f", {code})" if code else ")"
        if isinstance(detail, str) and _safe_text(detail):
            message += f": {_safe_text(detail)}"
        raise self._error(message, reason)

    def _unavailable(self, status: int, wait: float | None) -> LoginError:
        provider = self.config.provider
        if status == 429:
            seconds = math.ceil(wait) if wait is not None else 60
            err = self._error(
                f"the {provider} token endpoint is rate limited, retry in {seconds} s",
                "rate_limited",
            )
            assert err.data is not None
            err.data["retryAfter"] = seconds
            return err
        return self._error(
            f"the {provider} token endpoint failed (HTTP {status}); try again in a minute",
            "server_error",
        )

    def _error(self, message: str, reason: str) -> LoginError:
        return LoginError(message, {"provider": self.config.provider, "reason": reason})
