"""PKCE (RFC 7636), the authorization URL, and what a user may paste back.

Pure functions: no I/O beyond the operating system's random numbers.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import attrs

from sidecar.oauth._config import OAuthConfig

__all__ = [
    "PKCE",
    "PastedCode",
    "authorize_url",
    "challenge_of",
    "new_pkce",
    "parse_pasted",
]

# Codes and states are URL-safe tokens; anything else pasted is a mistake.
_TOKEN = re.compile(r"^[A-Za-z0-9._~\-]+$")
MAX_INPUT = 4096


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def challenge_of(verifier: str) -> str:
    """The S256 code challenge: base64url(SHA-256(verifier)), without padding."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


@attrs.frozen
class PKCE:
    """The secrets of one login attempt: fresh for every login, never reused."""

    verifier: str = attrs.field(repr=False)
    state: str = attrs.field(repr=False)

    @property
    def challenge(self) -> str:
        return challenge_of(self.verifier)


def new_pkce() -> PKCE:
    # 32 random bytes give a 43-character verifier, the minimum RFC 7636 allows;
    # the state is independent of it, so the URL reveals nothing about the verifier.
    return PKCE(verifier=_b64url(secrets.token_bytes(32)), state=_b64url(secrets.token_bytes(32)))


def authorize_url(config: OAuthConfig, redirect_uri: str, pkce: PKCE) -> str:
    query = urlencode(
        {
            "code": "true",  # asks the hosted page to show code#state for pasting
            "client_id": config.client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": config.scopes,
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
            "state": pkce.state,
        }
    )
    sep = "&" if "?" in config.authorize_url else "?"
    return f"{config.authorize_url}{sep}{query}"


@attrs.frozen
class PastedCode:
    code: str = attrs.field(repr=False)
    state: str = attrs.field(repr=False)


def parse_pasted(text: str) -> PastedCode:
    """The code and state in what the user pasted; ValueError saying what is wrong.

    Accepted: ``code#state`` (what the hosted page shows), the whole redirect URL
    (``…/callback?code=…&state=…``, as a browser's address bar has it), and
    ``code=…&state=…``. The state is required: it is what ties the code to this login.
    """
    text = text.strip()
    if not text:
        raise ValueError("nothing was pasted")
    if len(text) > MAX_INPUT or any(ch.isspace() for ch in text):
        raise ValueError("that is not a code: paste the code#state shown after signing in")
    if text.lower().startswith(("http://", "https://")):
        parts = urlsplit(text)
        fields = parse_qs(parts.query)
        if "code" not in fields and "error" not in fields:
            fields = parse_qs(parts.fragment)
        if "code" not in fields and "#" in parts.fragment:
            # a hosted page that put code#state in the fragment
            return _checked(*parts.fragment.partition("#")[::2])
        return _from_fields(fields)
    if "code=" in text or "error=" in text:
        return _from_fields(parse_qs(text.lstrip("?#&")))
    code, sep, state = text.partition("#")
    if not sep:
        raise ValueError("the state is missing: paste the whole code#state shown after signing in")
    return _checked(code, state)


def _from_fields(fields: dict[str, list[str]]) -> PastedCode:
    if "error" in fields:
        raise ValueError(f"the sign-in was not completed ({_short(fields['error'][0])})")
    code = fields.get("code", [""])[0]
    state = fields.get("state", [""])[0]
    if code and "#" in code and not state:
        code, _, state = code.partition("#")
    return _checked(code, state)


def _checked(code: str, state: str) -> PastedCode:
    if not code:
        raise ValueError("no code found in what was pasted")
    if not state:
        raise ValueError("the state is missing: paste the whole code#state shown after signing in")
    if not _TOKEN.match(code) or not _TOKEN.match(state):
        raise ValueError("that is not a code: paste the code#state shown after signing in")
    return PastedCode(code, state)


def _short(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\- ]", "", text)[:60] or "unknown error"
