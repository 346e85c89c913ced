"""``llm-sidecar login`` and ``logout``: the interactive OAuth loop of a terminal.

Unlike :mod:`sidecar.cli.commands`, a login waits on two things at once (the browser's
callback and a code pasted on stdin), so it runs an event loop of its own.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from sidecar.cli.commands import default_keypool, fail, load_settings

if TYPE_CHECKING:
    import argparse
    import asyncio

    from sidecar.oauth import LoginManager


# -- login and logout ------------------------------------------------------------


def _no_oauth(provider: str) -> int | None:
    from sidecar.oauth import OAUTH_PROVIDERS

    if provider in OAUTH_PROVIDERS:
        return None
    return fail(
        f"{provider} has no OAuth login (only {', '.join(OAUTH_PROVIDERS)}): "
        f"add an API key with `llm-sidecar key add --provider {provider}`",
        2,
    )


def cmd_login(args: argparse.Namespace) -> int:
    import asyncio

    refused = _no_oauth(args.provider)
    if refused is not None:
        return refused
    return asyncio.run(_login(_manager(), args.provider, args.paste, args.profile))


def _manager() -> LoginManager:
    """The logins of the user's home, with the endpoints and knobs the settings name."""
    from sidecar.oauth import LoginManager

    settings = load_settings()
    return LoginManager(default_keypool(settings), settings.env)


def _graphical_browser(env: dict[str, str]) -> bool:
    # webbrowser falls back to text browsers (lynx, w3m) that would take over this
    # terminal, which is reading the pasted code: only open a graphical one.
    if sys.platform in ("darwin", "win32"):
        return True
    return any(env.get(name) for name in ("BROWSER", "DISPLAY", "WAYLAND_DISPLAY"))


def _open_browser(url: str) -> bool:
    import os
    import webbrowser

    if not _graphical_browser(dict(os.environ)):
        return False
    try:
        return webbrowser.open(url, new=2)
    except webbrowser.Error:
        return False


def _stdin_lines() -> asyncio.Queue[str | None]:
    """Lines of stdin as an asyncio queue (None at the end), read by a daemon thread."""
    import asyncio
    import contextlib
    import threading

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def put(item: str | None) -> None:
        with contextlib.suppress(RuntimeError):  # the login ended and its loop is gone
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def pump() -> None:
        for line in sys.stdin:
            put(line)
        put(None)

    threading.Thread(target=pump, name="stdin", daemon=True).start()
    return queue


async def _login(manager: LoginManager, provider: str, paste: bool, profile: str) -> int:
    import asyncio

    from sidecar.credentials import Credential
    from sidecar.errors import InvalidParams, LoginError

    try:
        login = await manager.start(provider, "paste" if paste else "auto", profile)
    except (InvalidParams, LoginError) as exc:
        return fail(exc.message)
    print(f"Log in to {provider} in your browser:\n\n  {login.url}\n", flush=True)
    if not login.config.remote and _open_browser(login.url):
        print("(a browser window should have opened)")
    if login.mode == "auto":
        print("Waiting for the browser to come back. If it cannot, paste the code it shows")
        print("(code#state) or the address it ended on here, then press Enter.", flush=True)
    else:
        why = f" ({login.note})" if login.note else ""
        print(f"After signing in, paste the code shown (code#state) here{why}:", flush=True)
    lines = _stdin_lines()
    cred: Credential | None = None
    try:
        while cred is None:
            line_task = asyncio.ensure_future(lines.get())
            either: set[asyncio.Future[Any]] = {login.result, line_task}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if login.result.done():
                line_task.cancel()
                cred = login.result.result()  # the callback came: raises if it failed
                break
            line = line_task.result()
            if line is None:  # stdin closed: only the browser can finish it now
                if login.mode == "paste":
                    await manager.cancel(login.id)
                    return fail("no code was pasted; the login was cancelled")
                cred = await asyncio.shield(login.result)
                break
            if not line.strip():
                continue
            try:
                cred = await manager.complete(login.id, line)
            except InvalidParams as exc:
                print(f"llm-sidecar: {exc.message.split(': ', 2)[-1]}; try again:", flush=True)
            except LoginError as exc:
                if (exc.data or {}).get("reason") != "state_mismatch":
                    raise
                print(f"llm-sidecar: {exc.message}", flush=True)
    except LoginError as exc:
        return fail(exc.message)
    except asyncio.CancelledError:  # Ctrl-C
        await manager.cancel(login.id)
        raise
    finally:
        await manager.aclose()
    print(f"logged in: {cred.fingerprint} saved as profile {cred.id}")
    print(f"`llm-sidecar key add --login --provider {provider}` adds it to the key pool.")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    refused = _no_oauth(args.provider)
    if refused is not None:
        return refused
    removed = _manager().logout(args.provider, args.profile)
    if removed is None:
        print(f"no {args.provider} login in profile {args.provider}:{args.profile}")
        return 0
    print(f"logged out: removed {removed.fingerprint} ({removed.id})")
    return 0
