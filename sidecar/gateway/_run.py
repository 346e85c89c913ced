"""``llm-sidecar gateway`` and ``llm-sidecar gateway env``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping

from sidecar.engine import MAX_COOLDOWN_WAIT
from sidecar.gateway._token import gateway_token
from sidecar.loopback import is_loopback
from sidecar.rotation.keypool import KeyPool
from sidecar.settings import Settings
from sidecar.sources import GATEWAY_TOKEN_ENV
from sidecar.store import Store

__all__ = ["DEFAULT_PORT", "env_lines", "own_environment", "run"]

DEFAULT_PORT = 8765


def own_environment(environ: Mapping[str, str], token: str, port: int) -> dict[str, str]:
    """The environment the gateway's pool reads, without what points back at itself.

    A shell that ran ``eval "$(llm-sidecar gateway env)"`` holds the gateway's token as
    ``OPENAI_API_KEY`` and its URL as ``ANTHROPIC_BASE_URL``: read as provider settings,
    the token would be sent to the provider and requests would loop to the gateway.
    """
    own_urls = (f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://[::1]:{port}")
    return {
        k: v
        for k, v in environ.items()
        if v.strip() != token and not v.strip().startswith(own_urls)
    }


def _secrets_of(keypool: KeyPool, token: str) -> Callable[[], list[str]]:
    """The secrets the log filter redacts, re-read only when a store file changed.

    The filter asks for every record, and the gateway logs a line per request: reading
    and parsing the pool and state files each time was a tenth of a short request's cost.
    """
    last: tuple[object, list[str]] = (None, [])

    def known() -> list[str]:
        nonlocal last
        stamp = keypool.store.stamp()
        if stamp != last[0]:
            last = (stamp, [*keypool.known_secrets(), token])
        return last[1]

    return known


def run(host: str, port: int, *, allow_remote: bool) -> int:
    import logging

    from sidecar.logs import setup_logging

    store = Store.default()
    token = gateway_token(store)
    settings = Settings.load(store.home, own_environment(os.environ, token, port))
    settings.check()  # a bad value stops the gateway at start-up, naming the variable
    keypool = KeyPool(store, settings.env)
    setup_logging("INFO", known_secrets=_secrets_of(keypool, token))
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if not is_loopback(host):
        # Said at every start, in the log a service manager keeps: this is not the default.
        logging.getLogger("sidecar.gateway").warning(
            "--allow-remote: open on %s, beyond this machine; anyone who can reach "
            "the port and knows the token can spend your keys, and the Host check is off",
            host,
        )
    return asyncio.run(_main(settings, keypool, token, host, port, allow_remote=allow_remote))


async def _main(
    settings: Settings, keypool: KeyPool, token: str, host: str, port: int, *, allow_remote: bool
) -> int:
    from sidecar.gateway._app import make_app, serve
    from sidecar.gateway._proxy import Proxy
    from sidecar.gateway._upstream import upstream
    from sidecar.oauth import TokenRefresher

    oauth = TokenRefresher(keypool, settings.env)
    async with upstream(settings.timeouts) as session:
        proxy = Proxy(
            keypool,
            session,
            settings=settings,
            refresher=oauth.refresh,
            ensure_fresh=oauth.ensure_fresh,
            max_cooldown_wait=MAX_COOLDOWN_WAIT,
        )
        app = make_app(proxy, token=token, port=port, check_host=not allow_remote)
        from sidecar.rotation.sharing import start_sharing

        team = start_sharing(keypool, settings.team, lambda link: None)  # the link logs its changes
        try:
            await serve(app, host, port)
        finally:
            keypool.save_usage()
            if team is not None:
                await team.aclose()
    return 0


def env_lines(token: str, port: int, shell: str = "sh") -> list[str]:
    """The variables the common clients read, for ``eval``/``source``/``Invoke-Expression``."""
    base = f"http://127.0.0.1:{port}"
    variables = {
        # Claude Code and the anthropic SDKs: the base URL has no /v1.
        "ANTHROPIC_BASE_URL": f"{base}/anthropic",
        "ANTHROPIC_AUTH_TOKEN": token,  # Claude Code sends it as Authorization: Bearer
        # The openai SDKs and most OpenAI-compatible tools; aider reads OPENAI_API_BASE.
        "OPENAI_BASE_URL": f"{base}/openai/v1",
        "OPENAI_API_BASE": f"{base}/openai/v1",
        "OPENAI_API_KEY": token,
        GATEWAY_TOKEN_ENV: token,  # also how a sidecar in this shell tells it is no key
    }
    if shell == "fish":
        return [f"set -gx {k} '{v}'" for k, v in variables.items()]
    if shell == "powershell":
        return [f"$env:{k} = '{v}'" for k, v in variables.items()]
    return [f"export {k}='{v}'" for k, v in variables.items()]
