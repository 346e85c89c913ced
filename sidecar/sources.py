"""Credentials that come from outside the store: the environment and other tools' files.

Environment keys, per provider, in this priority (first wins, deduplicated):

1. ``LLM_SIDECAR_LIVE_<P>_KEY``: a single override; when set nothing else is used.
2. ``<P>_API_KEYS``: several keys split on commas, spaces or semicolons.
3. ``<P>_API_KEY``.
4. ``<P>_API_KEY_*`` (``_API_KEY_2``, ...), in name order.
5. The provider's extras: ``GOOGLE_API_KEY``, ``ANTHROPIC_OAUTH_TOKEN``.

An optional ``.env`` file in the sidecar's home supplies variables to a
sidecar started without the user's shell; the process environment wins.

Imports copy pi's and Claude Code's stored credentials into our store, through
the key pool's one write path (so a re-import clears what the provider said about
the old copy, and never moves the credential in use). Their files are only ever read.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from sidecar import paths
from sidecar.catalog import get_provider
from sidecar.credentials import Credential, Kind
from sidecar.errors import InvalidParams
from sidecar.loopback import is_loopback
from sidecar.store.envfile import read_env_file

if TYPE_CHECKING:  # the key pool imports this module
    from sidecar.rotation.keypool import KeyPool

__all__ = [
    "GATEWAY_TOKEN_ENV",
    "GATEWAY_TOKEN_PREFIX",
    "GATEWAY_URL_VARS",
    "EnvKeys",
    "ImportResult",
    "env_credentials",
    "import_claude_code",
    "import_pi",
    "kind_of_secret",
    "load_environment",
    "parse_env_file",
]

log = logging.getLogger(__name__)

_SPLIT = re.compile(r"[\s,;]+")

# The local gateway's token (``llm-sidecar gateway env`` exports it as OPENAI_API_KEY
# for the tools, and as LLM_SIDECAR_GATEWAY_TOKEN): in that shell it is no provider's
# key, and must not show as one or be sent to a provider.
GATEWAY_TOKEN_PREFIX = "llmsc-gw-"
GATEWAY_TOKEN_ENV = "LLM_SIDECAR_GATEWAY_TOKEN"
# The base URLs ``gateway env`` sets, beside the token (see _without_gateway_urls).
GATEWAY_URL_VARS = ("ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "OPENAI_API_BASE")


def parse_env_file(text: str) -> dict[str, str]:
    """``KEY=value`` lines; ``#`` comments, ``export`` and matching quotes allowed."""
    result = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        result[name] = value
    return result


def load_environment(home: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The process environment over the home's ``.env`` file.

    The home is made private (or refused) first: a ``.env`` in a directory others can
    write to could point the keys at any host. A ``.env`` that cannot be read safely
    (not a regular file, too large, not text) is skipped; ``status`` says why.
    """
    paths.secure_home(home)
    env_file = read_env_file(home)
    if env_file.problem:
        log.warning("%s", env_file.problem)
    env = dict(environ) if env_file.text is None else {**parse_env_file(env_file.text), **environ}
    return _without_gateway_urls(env)


def _without_gateway_urls(env: dict[str, str]) -> dict[str, str]:
    """Drop the base URLs that ``llm-sidecar gateway env`` pointed at the gateway.

    An editor started from that shell inherits them: read as provider settings, the
    sidecar would send the user's real keys to the gateway, which refuses anything
    but its own token with a 401, and every key would be evicted as invalid.
    """
    if not env.get(GATEWAY_TOKEN_ENV, "").strip():
        return env
    for name in GATEWAY_URL_VARS:
        host = urlsplit(env.get(name, "").strip()).hostname
        if host is not None and is_loopback(host):
            log.warning(
                "ignoring %s: it points at the llm-sidecar gateway (this shell ran"
                " `llm-sidecar gateway env`); the sidecar talks to the provider itself",
                name,
            )
            del env[name]
    return env


def kind_of_secret(provider: str, secret: str) -> Kind:
    """Anthropic OAuth and setup tokens (``sk-ant-oat…``) travel as Bearer tokens."""
    if provider == "anthropic" and secret.startswith("sk-ant-oat"):
        return "token"
    return "api_key"


@attrs.frozen
class EnvKeys:
    credentials: list[Credential]
    live_override: bool  # LLM_SIDECAR_LIVE_<P>_KEY is set: use nothing else


def env_credentials(provider: str, env: Mapping[str, str]) -> EnvKeys:
    prefix = get_provider(provider).env_prefix
    live = env.get(f"LLM_SIDECAR_LIVE_{prefix}_KEY", "").strip()
    if live:
        return EnvKeys([_env_cred(provider, f"LLM_SIDECAR_LIVE_{prefix}_KEY", live)], True)

    found: list[tuple[str, str]] = []
    many = env.get(f"{prefix}_API_KEYS", "")
    parts = [p for p in _SPLIT.split(many) if p]
    found += [(f"{prefix}_API_KEYS#{i}", key) for i, key in enumerate(parts, 1)]
    if env.get(f"{prefix}_API_KEY", "").strip():
        found.append((f"{prefix}_API_KEY", env[f"{prefix}_API_KEY"].strip()))
    numbered = sorted(n for n in env if n.startswith(f"{prefix}_API_KEY_"))
    found += [(n, env[n].strip()) for n in numbered if env[n].strip()]
    found += [
        (n, env[n].strip()) for n in get_provider(provider).extra_env if env.get(n, "").strip()
    ]

    seen: set[str] = {env.get(GATEWAY_TOKEN_ENV, "").strip()}
    creds = []
    for name, secret in found:
        if secret not in seen and not secret.startswith(GATEWAY_TOKEN_PREFIX):
            seen.add(secret)
            creds.append(_env_cred(provider, name, secret))
    return EnvKeys(creds, False)


def _env_cred(provider: str, var: str, secret: str) -> Credential:
    kind = "token" if var == "ANTHROPIC_OAUTH_TOKEN" else kind_of_secret(provider, secret)
    return Credential(id=f"env:{var}", provider=provider, kind=kind, source="env", secret=secret)


# -- imports ------------------------------------------------------------------


@attrs.frozen
class ImportResult:
    id: str
    fingerprint: str
    outcome: str  # "added" | "updated" | "unchanged" | "skipped (…why…)"


def _read_foreign(path: Path) -> Any:
    # Another tool's file: read through the store's safe reader, so a FIFO or a link to
    # /dev/zero at that path is refused instead of hanging the import.
    from sidecar.store.safefile import NotRegularFile, TooLarge, read_capped

    try:
        data = read_capped(path)
    except (NotRegularFile, TooLarge) as exc:
        raise ValueError(f"{exc}: nothing imported") from None
    if data is None:
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None


def _save_profile(keypool: KeyPool, cred: Credential) -> ImportResult:
    try:
        outcome: str = keypool.save_profile(cred)
    except InvalidParams as exc:  # e.g. the same token is saved under another name
        outcome = f"skipped ({exc.message.removeprefix('invalid params: profile: ')})"
    return ImportResult(cred.id, cred.fingerprint, outcome)


def import_pi(keypool: KeyPool, auth_path: Path, rotation_path: Path | None) -> list[ImportResult]:
    """pi's ``auth.json`` into profiles ``<provider>:pi``; ``key-rotation.json`` into the pool."""
    results = []
    auth = _read_foreign(auth_path)
    if not isinstance(auth, dict):
        raise ValueError(f"{auth_path}: expected an object of providers")
    for provider, entry in sorted(auth.items()):
        if not isinstance(entry, dict):
            continue
        try:
            get_provider(provider)
        except KeyError:
            continue  # a provider we do not serve
        record: dict[str, Any] = {"provider": provider, "label": "imported from pi"}
        if entry.get("type") == "api_key" and isinstance(entry.get("key"), str):
            record.update(type=kind_of_secret(provider, entry["key"]))
            record["token" if record["type"] == "token" else "key"] = entry["key"]
        elif entry.get("type") == "oauth" and isinstance(entry.get("access"), str):
            record.update(type="oauth", access=entry["access"], refresh=entry.get("refresh"))
            record["expires"] = entry.get("expires")
        else:
            continue
        cred = Credential.from_record(f"{provider}:pi", "profile", record)
        results.append(_save_profile(keypool, cred))

    if rotation_path is not None and rotation_path.exists():
        rotation = _read_foreign(rotation_path)
        keys = rotation.get("keys") if isinstance(rotation, dict) else None
        if not isinstance(keys, list):
            raise ValueError(f'{rotation_path}: expected {{"keys": [...]}}')
        for key in keys:
            if isinstance(key, str) and key.strip():
                key = key.strip()
                cred = Credential(
                    id="",
                    provider="anthropic",
                    kind=kind_of_secret("anthropic", key),
                    source="pool",
                    secret=key,
                    label="imported from pi key rotation",
                )
                pooled, new = keypool.add_to_pool(cred)
                outcome = "added" if new else "unchanged"
                results.append(ImportResult(pooled.id, pooled.fingerprint, outcome))
    return results


def import_claude_code(keypool: KeyPool, path: Path) -> list[ImportResult]:
    """Claude Code's ``.credentials.json`` (``claudeAiOauth``) into ``anthropic:claude-code``."""
    doc = _read_foreign(path)
    oauth = doc.get("claudeAiOauth") if isinstance(doc, dict) else None
    if not isinstance(oauth, dict) or not isinstance(oauth.get("accessToken"), str):
        raise ValueError(f"{path}: no claudeAiOauth login in it")
    cred = Credential.from_record(
        "anthropic:claude-code",
        "profile",
        {
            "type": "oauth",
            "provider": "anthropic",
            "access": oauth["accessToken"],
            "refresh": oauth.get("refreshToken"),
            "expires": oauth.get("expiresAt"),
            "label": "imported from Claude Code",
        },
    )
    return [_save_profile(keypool, cred)]
