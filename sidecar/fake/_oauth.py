"""A stand-in for Anthropic's OAuth authorization server (Claude Pro/Max logins).

Endpoints, on the fake's own address:

- ``GET /oauth/authorize``: checks the query (client id, ``response_type=code``, an S256
  ``code_challenge``, ``redirect_uri``, ``state``) and answers 302 to
  ``redirect_uri?code=…&state=…``, as if the user had signed in and approved. A test
  "plays the browser" by fetching the URL and following the redirect.
- ``GET /oauth/code/callback``: the hosted page of the paste flow; shows ``code#state``
  (in ``<code id="code">``).
- ``POST /v1/oauth/token``: JSON bodies as the real endpoint takes them. A code is
  single-use, its ``code_verifier`` must match the challenge and its ``redirect_uri``
  the authorize step's. Refresh tokens are single-use too: a spent one gets 400
  ``invalid_grant``. Issued access tokens are registered as known keys, so
  ``/v1/messages`` accepts them as ``Authorization: Bearer``.

Scripting: :meth:`OAuthState.fail` queues failures of the token endpoint (``429`` with
Retry-After, ``500``, ``invalid_grant``), each used by the next token request (of its
grant type, when it names one); ``delay`` holds every token answer back (to widen a
race); ``expires_in`` sets the lifetime of issued tokens; :meth:`OAuthState.issue` makes
a login without the browser dance; ``refresh_requests`` counts refresh requests.

The same as JSON for tests in other processes: ``POST /_fake/oauth`` with any of
``{"failures": [{"kind": "rate_limited", "retryAfter": 1, "grant": "refresh_token"},
{"kind": "server_error"}, {"kind": "invalid_grant"}], "delay": S, "expiresIn": N,
"deny": true}``, ``POST /_fake/oauth/issue`` ``{"expiresIn"?}`` (answers
``{"access", "refresh", "expiresIn"}``), ``GET /_fake/oauth`` (the counters).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

from sidecar.fake._presets import InvalidKey
from sidecar.fake._script import Script
from sidecar.fake._state import State

__all__ = [
    "AUTHORIZE_PATH",
    "CLIENT_ID",
    "MANUAL_PATH",
    "TOKEN_PATH",
    "OAuthState",
    "TokenFailure",
    "TokenPair",
    "parse_failure",
]

AUTHORIZE_PATH = "/oauth/authorize"
MANUAL_PATH = "/oauth/code/callback"
TOKEN_PATH = "/v1/oauth/token"
CLIENT_ID = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"  # the public client id Anthropic knows
DEFAULT_EXPIRES_IN = 8 * 3600

FailureKind = Literal["rate_limited", "server_error", "invalid_grant"]
Grant = Literal["authorization_code", "refresh_token"]
# (status, headers, body, content type)
Answer = tuple[int, list[tuple[str, str]], bytes, str]


@dataclass(frozen=True, slots=True)
class TokenFailure:
    """One scripted failure of the token endpoint."""

    kind: FailureKind
    retry_after: float | None = None  # rate_limited: the Retry-After header, in seconds
    status: int | None = None  # server_error: 500 unless given
    grant: Grant | None = None  # only for this grant type; None: the next token request

    def __post_init__(self) -> None:
        if self.kind not in ("rate_limited", "server_error", "invalid_grant"):
            raise ValueError(f"unknown token failure kind {self.kind!r}")
        if self.grant not in (None, "authorization_code", "refresh_token"):
            raise ValueError(f"unknown grant type {self.grant!r}")


def parse_failure(value: object) -> TokenFailure:
    if not isinstance(value, Mapping):
        raise ValueError(f"a token failure must be an object, got {value!r}")
    unknown = sorted(set(value) - {"kind", "retryAfter", "status", "grant"})
    if unknown:
        raise ValueError(f"token failure: unknown field(s) {unknown}")
    try:
        return TokenFailure(
            kind=value["kind"],
            retry_after=value.get("retryAfter"),
            status=value.get("status"),
            grant=value.get("grant"),
        )
    except KeyError:
        raise ValueError("token failure: 'kind' is required") from None


@dataclass(frozen=True, slots=True)
class TokenPair:
    access: str
    refresh: str
    expires_in: int


@dataclass(slots=True)
class _Code:
    challenge: str
    redirect_uri: str
    state: str
    used: bool = False


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _json(status: int, value: object, headers: list[tuple[str, str]] | None = None) -> Answer:
    return status, headers or [], json.dumps(value).encode(), "application/json"


def _oauth_error(error: str, description: str, status: int = 400) -> Answer:
    return _json(status, {"error": error, "error_description": description})


def _text(status: int, text: str) -> Answer:
    return status, [], text.encode(), "text/plain; charset=utf-8"


class OAuthState:
    """The authorization server's memory; shared by the fake's thread and the test's."""

    def __init__(self, state: State) -> None:
        self._state = state
        self._lock = threading.Lock()
        self.on_issue: Callable[[str], None] | None = None  # e.g. record tokens as test secrets
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._codes: dict[str, _Code] = {}
            self._refresh: set[str] = set()  # unspent refresh tokens
            self._failures: deque[TokenFailure] = deque()
            self._issued: list[TokenPair] = []
            self._counts = {"token": 0, "refresh": 0, "exchange": 0, "authorize": 0}
            self.delay = 0.0
            self.expires_in = DEFAULT_EXPIRES_IN
            self.deny = False  # the next authorize is declined by the "user"

    # -- the test's side --

    def fail(self, *failures: TokenFailure | Mapping[str, Any]) -> None:
        """Queue failures of the token endpoint, in order."""
        parsed = [f if isinstance(f, TokenFailure) else parse_failure(f) for f in failures]
        with self._lock:
            self._failures.extend(parsed)

    def issue(self, expires_in: int | None = None) -> TokenPair:
        """A login as if the whole browser dance had happened: a fresh token pair."""
        with self._lock:
            return self._issue(expires_in)

    def revoke_access(self, access: str) -> None:
        """Make ``/v1/messages`` answer 401 to this access token from now on."""
        self._state.set_script(Script(access, (), InvalidKey()))

    @property
    def refresh_requests(self) -> int:
        with self._lock:
            return self._counts["refresh"]

    @property
    def exchange_requests(self) -> int:
        with self._lock:
            return self._counts["exchange"]

    @property
    def issued(self) -> list[TokenPair]:
        with self._lock:
            return list(self._issued)

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {
                "tokenRequests": self._counts["token"],
                "refreshRequests": self._counts["refresh"],
                "exchangeRequests": self._counts["exchange"],
                "authorizeRequests": self._counts["authorize"],
                "issued": len(self._issued),
            }

    def configure(self, value: object) -> None:
        """``POST /_fake/oauth``: failures, delay, expiresIn, deny."""
        if not isinstance(value, Mapping):
            raise ValueError("expected an object")
        unknown = sorted(set(value) - {"failures", "delay", "expiresIn", "deny"})
        if unknown:
            raise ValueError(f"unknown field(s) {unknown}")
        failures = value.get("failures", [])
        if not isinstance(failures, list):
            raise ValueError("'failures' must be a list")
        self.fail(*failures)
        with self._lock:
            if "delay" in value:
                self.delay = float(value["delay"])
            if "expiresIn" in value:
                self.expires_in = int(value["expiresIn"])
            if "deny" in value:
                self.deny = bool(value["deny"])

    # -- the endpoints (called on the fake's event loop) --

    def authorize(self, target: str) -> Answer:
        query = {k: v[0] for k, v in parse_qs(urlsplit(target).query).items()}
        with self._lock:
            self._counts["authorize"] += 1
            if query.get("client_id") != CLIENT_ID:
                return _text(400, "unknown client_id")
            if query.get("response_type") != "code":
                return _text(400, "response_type must be code")
            if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
                return _text(400, "an S256 code_challenge is required")
            redirect_uri, state = query.get("redirect_uri", ""), query.get("state", "")
            if not redirect_uri.startswith(("http://", "https://")) or not state:
                return _text(400, "redirect_uri and state are required")
            if "user:inference" not in query.get("scope", "").split():
                return _text(400, "invalid scope")
            if self.deny:
                self.deny = False
                params = {"error": "access_denied", "state": state}
            else:
                code = secrets.token_urlsafe(24)
                self._codes[code] = _Code(query["code_challenge"], redirect_uri, state)
                self._state.add_secret(code)
                params = {"code": code, "state": state}
        sep = "&" if "?" in redirect_uri else "?"
        return 302, [("location", f"{redirect_uri}{sep}{urlencode(params)}")], b"", ""

    def manual_page(self, target: str) -> Answer:
        query = {k: v[0] for k, v in parse_qs(urlsplit(target).query).items()}
        shown = html.escape(f"{query.get('code', '')}#{query.get('state', '')}")
        body = (
            "<!doctype html><title>Authentication code</title>"
            f"<p>Paste this code into your application:</p><code id='code'>{shown}</code>"
        )
        return 200, [], body.encode(), "text/html; charset=utf-8"

    def token(self, raw: bytes) -> Answer:
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _oauth_error("invalid_request", "the body must be a JSON object")
        grant = body.get("grant_type")
        with self._lock:
            self._counts["token"] += 1
            if grant == "refresh_token":
                self._counts["refresh"] += 1
            elif grant == "authorization_code":
                self._counts["exchange"] += 1
            failure = self._next_failure(grant)
            if failure is not None:
                return self._failure(failure)
            if body.get("client_id") != CLIENT_ID:
                return _oauth_error("invalid_client", "unknown client", 401)
            if grant == "authorization_code":
                return self._exchange(body)
            if grant == "refresh_token":
                return self._refresh_grant(body)
            return _oauth_error("unsupported_grant_type", f"grant_type {grant!r}")

    # -- inside the lock --

    def _next_failure(self, grant: object) -> TokenFailure | None:
        for i, failure in enumerate(self._failures):
            if failure.grant is None or failure.grant == grant:
                del self._failures[i]
                return failure
        return None

    @staticmethod
    def _failure(failure: TokenFailure) -> Answer:
        if failure.kind == "rate_limited":
            headers = []
            if failure.retry_after is not None:
                headers.append(("retry-after", f"{failure.retry_after:g}"))
            body = {"error": {"type": "rate_limit_error", "message": "Rate limited"}}
            return _json(429, body, headers)
        if failure.kind == "server_error":
            return _json(
                failure.status or 500, {"error": {"type": "api_error", "message": "Internal error"}}
            )
        return _oauth_error("invalid_grant", "Refresh token not found or invalid")

    def _exchange(self, body: dict[str, Any]) -> Answer:
        code = self._codes.get(str(body.get("code")))
        if code is None or code.used:
            return _oauth_error("invalid_grant", "Invalid or already used authorization code")
        code.used = True  # spent by its first use, whatever the outcome
        verifier = body.get("code_verifier")
        if not isinstance(verifier, str) or _s256(verifier) != code.challenge:
            return _oauth_error("invalid_grant", "code_verifier does not match the challenge")
        if body.get("redirect_uri") != code.redirect_uri:
            return _oauth_error("invalid_grant", "redirect_uri does not match the authorize step")
        if "state" in body and body["state"] != code.state:
            return _oauth_error("invalid_request", "state does not match")
        return self._token_answer(self._issue(None))

    def _refresh_grant(self, body: dict[str, Any]) -> Answer:
        if "scope" in body:
            return _oauth_error("invalid_scope", "scope is not allowed when refreshing")
        token = body.get("refresh_token")
        if not isinstance(token, str) or token not in self._refresh:
            return _oauth_error("invalid_grant", "Refresh token not found or invalid")
        self._refresh.discard(token)  # single-use
        return self._token_answer(self._issue(None))

    def _issue(self, expires_in: int | None) -> TokenPair:
        pair = TokenPair(
            access="sk-ant-oat01-" + secrets.token_urlsafe(32),
            refresh="sk-ant-ort01-" + secrets.token_urlsafe(32),
            expires_in=self.expires_in if expires_in is None else expires_in,
        )
        self._refresh.add(pair.refresh)
        self._issued.append(pair)
        self._state.set_script(Script(pair.access))
        self._state.add_secret(pair.refresh)
        if self.on_issue is not None:
            self.on_issue(pair.access)
            self.on_issue(pair.refresh)
        return pair

    @staticmethod
    def _token_answer(pair: TokenPair) -> Answer:
        return _json(
            200,
            {
                "token_type": "Bearer",
                "access_token": pair.access,
                "refresh_token": pair.refresh,
                "expires_in": pair.expires_in,
                "scope": "user:inference user:profile",
            },
        )
