"""PKCE, pasted input, token responses and token-endpoint retries, without processes."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.errors import LoginError
from sidecar.oauth import (
    ANTHROPIC_CLIENT_ID,
    TokenClient,
    authorize_url,
    challenge_of,
    new_pkce,
    oauth_config,
    parse_pasted,
    retry_after_seconds,
    token_set,
)
from sidecar.oauth._tokens import EXPIRY_MARGIN
from tests.oauth.support import query

CONFIG = oauth_config("anthropic", {})

# -- PKCE ------------------------------------------------------------------------


def test_the_challenge_is_base64url_of_the_sha256_of_the_verifier() -> None:
    pkce = new_pkce()
    digest = hashlib.sha256(pkce.verifier.encode()).digest()
    assert pkce.challenge == base64.urlsafe_b64encode(digest).decode().rstrip("=")
    # RFC 7636's own example
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert challenge_of(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_every_login_gets_a_fresh_verifier_and_state() -> None:
    pairs = [new_pkce() for _ in range(50)]
    assert len({p.verifier for p in pairs}) == len({p.state for p in pairs}) == 50
    for p in pairs:
        # 32 random bytes, base64url without padding: 43 characters of the URL-safe set.
        assert len(p.verifier) == 43 and "=" not in p.verifier
        assert len(base64.urlsafe_b64decode(p.verifier + "=")) == 32
        assert p.state != p.verifier
    assert pairs[0].verifier not in repr(pairs[0])


def test_the_authorize_url() -> None:
    pkce = new_pkce()
    url = authorize_url(CONFIG, "http://localhost:53692/callback", pkce)
    assert url.startswith("https://claude.ai/oauth/authorize?")
    assert query(url) == {
        "code": "true",
        "client_id": ANTHROPIC_CLIENT_ID,
        "response_type": "code",
        "redirect_uri": "http://localhost:53692/callback",
        "scope": "org:create_api_key user:profile user:inference",
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        "state": pkce.state,
    }


def test_endpoints_are_overridable() -> None:
    config = oauth_config(
        "anthropic",
        {
            "LLM_SIDECAR_ANTHROPIC_AUTHORIZE_URL": "http://127.0.0.1:1/a?x=1",
            "LLM_SIDECAR_ANTHROPIC_TOKEN_URL": "http://127.0.0.1:1/t",
            "LLM_SIDECAR_ANTHROPIC_MANUAL_REDIRECT_URL": "http://127.0.0.1:1/m",
            "LLM_SIDECAR_OAUTH_CALLBACK_PORT": "40000",
            "LLM_SIDECAR_OAUTH_TIMEOUT": "2.5",
        },
    )
    assert (config.token_url, config.manual_redirect_url) == (
        "http://127.0.0.1:1/t",
        "http://127.0.0.1:1/m",
    )
    assert (config.callback_port, config.port_explicit, config.timeout) == (40000, True, 2.5)
    assert authorize_url(config, "r", new_pkce()).startswith("http://127.0.0.1:1/a?x=1&code=true")
    assert CONFIG.token_url == "https://platform.claude.com/v1/oauth/token"
    assert CONFIG.manual_redirect_url == "https://platform.claude.com/oauth/code/callback"
    assert (CONFIG.callback_port, CONFIG.port_explicit, CONFIG.timeout) == (53692, False, 300)
    for bad in ({"LLM_SIDECAR_OAUTH_CALLBACK_PORT": "70000"}, {"LLM_SIDECAR_OAUTH_TIMEOUT": "x"}):
        with pytest.raises(LoginError):
            oauth_config("anthropic", bad)


# -- what the user pastes --------------------------------------------------------

CODE, STATE = "Xy_z-9.code~1", "st4te-Abc_d"


@pytest.mark.parametrize(
    "text",
    [
        f"{CODE}#{STATE}",
        f"  {CODE}#{STATE}\n",
        f"https://platform.claude.com/oauth/code/callback?code={CODE}&state={STATE}",
        f"http://localhost:53692/callback?state={STATE}&code={CODE}",
        f"code={CODE}&state={STATE}",
        f"?code={CODE}&state={STATE}",
    ],
)
def test_pasted_shapes(text: str) -> None:
    pasted = parse_pasted(text)
    assert (pasted.code, pasted.state) == (CODE, STATE)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "nothing was pasted"),
        ("   ", "nothing was pasted"),
        (CODE, "state is missing"),
        (f"{CODE}#", "state is missing"),
        (f"#{STATE}", "no code"),
        (f"{CODE} #{STATE}", "not a code"),
        ("<html>#</html>", "not a code"),
        (f"{CODE}#{STATE}<script>", "not a code"),
        ("https://example.com/callback?x=1", "no code"),
        (f"https://example.com/callback?code={CODE}", "state is missing"),
        ("https://example.com/cb?error=access_denied&state=s", "not completed (access_denied)"),
        (f"code={CODE}", "state is missing"),
        ("x" * 5000, "not a code"),
    ],
)
def test_pasted_garbage_says_what_is_wrong(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why.replace("(", r"\(").replace(")", r"\)")):
        parse_pasted(text)


@given(st.text(max_size=200))
def test_parsing_anything_either_works_or_says_why(text: str) -> None:
    try:
        pasted = parse_pasted(text)
    except ValueError as exc:
        assert str(exc)
    else:
        assert pasted.code and pasted.state


# -- token responses ---------------------------------------------------------------


def test_expiry_is_now_plus_expires_in_minus_five_minutes() -> None:
    tokens = token_set(
        {"access_token": "a" * 20, "refresh_token": "r" * 20, "expires_in": 28800}, now=1000.0
    )
    assert tokens.expires_at == 1000.0 + 28800 - EXPIRY_MARGIN == 1000.0 + 28800 - 300
    assert (tokens.access, tokens.refresh) == ("a" * 20, "r" * 20)
    short = token_set({"access_token": "a" * 20, "expires_in": 60}, now=1000.0)
    assert short.expires_at == 1000.0  # never before now
    unknown = token_set({"access_token": "a" * 20}, now=1000.0)
    assert unknown.expires_at is None


def test_an_answer_without_a_refresh_token_keeps_the_old_one() -> None:
    tokens = token_set({"access_token": "a" * 20, "expires_in": 3600}, 0.0, old_refresh="old")
    assert tokens.refresh == "old"
    tokens = token_set({"access_token": "a", "refresh_token": ""}, 0.0, old_refresh="old")
    assert tokens.refresh == "old"


@pytest.mark.parametrize(
    "body", [None, [], {}, {"access_token": ""}, {"access_token": 5}, {"access_token": "a b"}]
)
def test_an_answer_without_an_access_token_is_refused(body: Any) -> None:
    with pytest.raises(ValueError):
        token_set(body, 0.0)


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_seconds("7", 0.0) == 7.0
    assert retry_after_seconds(None, 0.0) is None
    assert retry_after_seconds("soon", 0.0) is None
    when = email.utils.formatdate(1_000_030.0, usegmt=True)
    assert retry_after_seconds(when, 1_000_000.0) == 30.0
    assert retry_after_seconds("-3", 0.0) == 0.0


# -- the token endpoint, with retries ------------------------------------------------


class Endpoint:
    """A scripted token endpoint: one answer per request, requests recorded."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"].startswith("llm-sidecar/")
        return self.answers.pop(0)


def ok(**extra: Any) -> httpx.Response:
    body = {"access_token": "new-access-token-0001", "expires_in": 3600, **extra}
    return httpx.Response(200, json=body)


def client(endpoint: Endpoint, sleeps: list[float], cap: float = 0.01) -> TokenClient:
    config = oauth_config("anthropic", {"LLM_SIDECAR_OAUTH_MAX_RETRY_WAIT": str(cap)})
    return TokenClient(
        config, transport=httpx.MockTransport(endpoint), sleep=sleeps.append, clock=lambda: 0.0
    )


def test_the_exchange_and_refresh_bodies() -> None:
    endpoint = Endpoint(ok(refresh_token="r2"), ok())
    tokens = client(endpoint, []).exchange("the-code", "the-state", "the-verifier", "http://x/cb")
    assert tokens.refresh == "r2" and tokens.expires_at == 3600 - 300
    refreshed = client(endpoint, []).refresh("r2")
    assert refreshed.refresh == "r2"  # kept: the answer had none
    assert endpoint.bodies == [
        {
            "grant_type": "authorization_code",
            "client_id": ANTHROPIC_CLIENT_ID,
            "code": "the-code",
            "state": "the-state",
            "redirect_uri": "http://x/cb",
            "code_verifier": "the-verifier",
        },
        {"grant_type": "refresh_token", "client_id": ANTHROPIC_CLIENT_ID, "refresh_token": "r2"},
    ]


def test_a_429_is_retried_after_retry_after_capped() -> None:
    sleeps: list[float] = []
    endpoint = Endpoint(
        httpx.Response(429, headers={"retry-after": "30"}),
        httpx.Response(429, headers={"retry-after": "0.004"}),
        ok(),
    )
    tokens = client(endpoint, sleeps, cap=0.01).refresh("r")
    assert tokens.access == "new-access-token-0001"
    assert sleeps == [0.01, 0.004]  # 30 s capped; a short Retry-After honoured as is


def test_a_lasting_429_names_the_rate_limit_and_the_wait() -> None:
    sleeps: list[float] = []
    endpoint = Endpoint(*[httpx.Response(429, headers={"retry-after": "42"})] * 3)
    with pytest.raises(LoginError) as err:
        client(endpoint, sleeps).refresh("r")
    assert len(endpoint.bodies) == 3 and sleeps == [0.01, 0.01]
    assert err.value.code == -32005
    assert err.value.message == "the anthropic token endpoint is rate limited, retry in 42 s"
    assert err.value.data == {"provider": "anthropic", "reason": "rate_limited", "retryAfter": 42}


def test_a_5xx_is_retried_with_a_backoff_then_named() -> None:
    sleeps: list[float] = []
    tokens = client(Endpoint(httpx.Response(503), ok()), sleeps, cap=0.02).refresh("r")
    assert tokens.access and sleeps == [0.02]
    with pytest.raises(LoginError) as err:
        client(Endpoint(*[httpx.Response(500)] * 3), []).refresh("r")
    assert err.value.data == {"provider": "anthropic", "reason": "server_error"}
    assert "HTTP 500" in err.value.message and "API key" not in err.value.message


def test_invalid_grant_says_log_in_again() -> None:
    body = {"error": "invalid_grant", "error_description": "Refresh token not found or invalid"}
    endpoint = Endpoint(httpx.Response(400, json=body))
    with pytest.raises(LoginError) as err:
        client(endpoint, []).refresh("r")
    assert len(endpoint.bodies) == 1  # never retried
    assert err.value.data == {"provider": "anthropic", "reason": "invalid_grant"}
    assert err.value.message.endswith("log in again")


def test_other_refusals_carry_the_endpoints_code_but_no_token() -> None:
    body = {"error": "invalid_scope", "error_description": "echo sk-ant-ort01-" + "x" * 50}
    with pytest.raises(LoginError) as err:
        client(Endpoint(httpx.Response(400, json=body)), []).refresh("sk-ant-ort01-" + "x" * 50)
    assert err.value.data == {"provider": "anthropic", "reason": "invalid_scope"}
    assert "xxxxxxxxxx" not in err.value.message
    with pytest.raises(LoginError) as err:
        client(Endpoint(httpx.Response(403, text="<html>no</html>")), []).refresh("r")
    assert err.value.data == {"provider": "anthropic", "reason": "http_403"}
    with pytest.raises(LoginError) as err:
        client(Endpoint(httpx.Response(200, text="not json")), []).refresh("r")
    assert err.value.data == {"provider": "anthropic", "reason": "bad_response"}


def test_a_network_failure_is_retried_then_named() -> None:
    calls = 0

    def down(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("refused", request=request)

    sleeps: list[float] = []
    config = oauth_config("anthropic", {"LLM_SIDECAR_OAUTH_MAX_RETRY_WAIT": "0"})
    tokens = TokenClient(config, transport=httpx.MockTransport(down), sleep=sleeps.append)
    with pytest.raises(LoginError) as err:
        tokens.refresh("r")
    assert calls == 3 and sleeps == [0.0, 0.0]
    assert err.value.data == {"provider": "anthropic", "reason": "network"}
    assert "could not reach the anthropic token endpoint" in err.value.message


def test_a_cleartext_token_endpoint_needs_the_opt_in() -> None:
    remote = {"LLM_SIDECAR_ANTHROPIC_TOKEN_URL": "http://192.0.2.7/t"}
    with pytest.raises(LoginError, match="LLM_SIDECAR_ALLOW_INSECURE_HTTP=1"):
        oauth_config("anthropic", remote)
    allowed = oauth_config("anthropic", {**remote, "LLM_SIDECAR_ALLOW_INSECURE_HTTP": "1"})
    assert allowed.token_url == "http://192.0.2.7/t"
