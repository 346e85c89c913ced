"""The fake authorization server itself: what it checks, its scripting, its JSON control."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
import pytest

from sidecar.fake import FakeProvider, TokenFailure
from sidecar.oauth import ANTHROPIC_CLIENT_ID, new_pkce
from tests.oauth.support import query

REDIRECT = "http://localhost:1/callback"


def authorize(fake: FakeProvider, challenge: str, state: str = "s1", **extra: str) -> str:
    """The code the fake hands out, as the redirect carries it."""
    params = {
        "code": "true",
        "client_id": ANTHROPIC_CLIENT_ID,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "org:create_api_key user:profile user:inference",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": state,
        **extra,
    }
    answer = httpx.get(f"{fake.url}/oauth/authorize?{urlencode(params)}")
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?") and query(location)["state"] == state
    return query(location)["code"]


def token(fake: FakeProvider, **body: str) -> httpx.Response:
    return httpx.post(f"{fake.url}/v1/oauth/token", json={"client_id": ANTHROPIC_CLIENT_ID, **body})


def exchange(
    fake: FakeProvider, code: str, verifier: str, redirect: str = REDIRECT
) -> httpx.Response:
    return token(
        fake,
        grant_type="authorization_code",
        code=code,
        state="s1",
        redirect_uri=redirect,
        code_verifier=verifier,
    )


def test_a_code_needs_its_verifier_and_redirect_uri_and_is_single_use(fake: FakeProvider) -> None:
    pkce = new_pkce()
    code = authorize(fake, pkce.challenge)
    assert exchange(fake, code, new_pkce().verifier).json()["error"] == "invalid_grant"
    code = authorize(fake, pkce.challenge)
    assert exchange(fake, code, pkce.verifier, "http://other/cb").json()["error"] == "invalid_grant"
    code = authorize(fake, pkce.challenge)
    answer = exchange(fake, code, pkce.verifier)
    assert answer.status_code == 200
    tokens = answer.json()
    assert tokens["access_token"].startswith("sk-ant-oat01-") and tokens["expires_in"] > 0
    assert exchange(fake, code, pkce.verifier).json()["error"] == "invalid_grant"  # spent
    # The access token is a key /v1/messages accepts.
    reply = httpx.post(
        f"{fake.url}/v1/messages",
        headers={
            "authorization": f"Bearer {tokens['access_token']}",
            "anthropic-version": "2023-06-01",
        },
        json={"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert reply.status_code == 200
    assert fake.oauth.exchange_requests == 4


def test_authorize_checks_its_query(fake: FakeProvider) -> None:
    for bad in ({"client_id": "other"}, {"code_challenge_method": "plain"}, {"state": ""}):
        params = {
            "client_id": ANTHROPIC_CLIENT_ID,
            "response_type": "code",
            "redirect_uri": REDIRECT,
            "scope": "user:inference",
            "code_challenge": "c",
            "code_challenge_method": "S256",
            "state": "s",
            **bad,
        }
        answer = httpx.get(f"{fake.url}/oauth/authorize?{urlencode(params)}")
        assert answer.status_code == 400, bad


def test_refresh_tokens_are_single_use_and_counted(fake: FakeProvider) -> None:
    pair = fake.oauth.issue(expires_in=60)
    first = token(fake, grant_type="refresh_token", refresh_token=pair.refresh)
    assert first.status_code == 200 and first.json()["expires_in"] == 8 * 3600
    reused = token(fake, grant_type="refresh_token", refresh_token=pair.refresh)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    scoped = token(
        fake, grant_type="refresh_token", refresh_token=first.json()["refresh_token"], scope="x"
    )
    assert scoped.json()["error"] == "invalid_scope"
    assert fake.oauth.refresh_requests == 3


def test_scripted_failures_in_order_and_by_grant(fake: FakeProvider) -> None:
    pair = fake.oauth.issue()
    fake.oauth.fail(
        TokenFailure("rate_limited", retry_after=7, grant="refresh_token"),
        {"kind": "server_error", "status": 503},
        {"kind": "invalid_grant"},
    )
    limited = token(fake, grant_type="refresh_token", refresh_token=pair.refresh)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert token(fake, grant_type="authorization_code", code="x").status_code == 503
    refused = token(fake, grant_type="refresh_token", refresh_token=pair.refresh)
    assert refused.json()["error"] == "invalid_grant"
    assert token(fake, grant_type="refresh_token", refresh_token=pair.refresh).status_code == 200
    with pytest.raises(ValueError):
        fake.oauth.fail({"kind": "teapot"})


def test_the_json_control_for_other_processes(fake: FakeProvider) -> None:
    issued = httpx.post(f"{fake.url}/_fake/oauth/issue", json={"expiresIn": 120}).json()
    assert issued["expiresIn"] == 120 and issued["access"].startswith("sk-ant-oat01-")
    configured = httpx.post(
        f"{fake.url}/_fake/oauth",
        json={"failures": [{"kind": "invalid_grant", "grant": "refresh_token"}], "expiresIn": 90},
    )
    assert configured.json() == {"ok": True}
    refused = token(fake, grant_type="refresh_token", refresh_token=issued["refresh"])
    assert refused.json()["error"] == "invalid_grant"
    renewed = token(fake, grant_type="refresh_token", refresh_token=issued["refresh"])
    assert renewed.json()["expires_in"] == 90
    counters = httpx.get(f"{fake.url}/_fake/oauth").json()
    assert counters["refreshRequests"] == 2 and counters["issued"] == 2
    bad = httpx.post(f"{fake.url}/_fake/oauth", json={"failures": [{"kind": "nope"}]})
    assert bad.status_code == 400
    httpx.post(f"{fake.url}/_fake/reset")
    assert httpx.get(f"{fake.url}/_fake/oauth").json()["issued"] == 0


def test_the_hosted_page_shows_code_and_state(fake: FakeProvider) -> None:
    page = httpx.get(f"{fake.url}/oauth/code/callback?code=abc&state=def")
    assert page.status_code == 200 and "<code id='code'>abc#def</code>" in page.text
