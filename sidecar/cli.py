"""The ``llm-sidecar`` command.

``llm-sidecar`` (or ``serve``) runs the stdio server an editor spawns; the
other subcommands manage the same store from a terminal. Each command is a
small function; modules are imported inside them so that ``serve`` starts fast.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sidecar import __version__

if TYPE_CHECKING:
    import argparse
    import asyncio

    from sidecar.keypool import KeyPool
    from sidecar.rotation import ProviderStatus

__all__ = ["main"]

Command = Callable[["argparse.Namespace"], int]


def _keypool() -> KeyPool:
    from sidecar.keypool import KeyPool
    from sidecar.store import Store

    return KeyPool(Store.default())


def _fail(message: str, code: int = 1) -> int:
    print(f"llm-sidecar: {message}", file=sys.stderr)
    return code


# -- serve ---------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from sidecar.server import serve

    return serve(log_level=args.log_level, log_file=args.log_file)


# -- status --------------------------------------------------------------------


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else ""


def _print_status(status: ProviderStatus) -> None:
    print(f"{status.provider}  {status.text}")
    for i, c in enumerate(status.credentials, 1):
        detail: str = c.state
        if c.cooldown_until:
            detail += f" until {_when(c.cooldown_until)}"
        elif c.expires_at and c.state in ("expiring", "expired", "ok"):
            detail += f" (expires {_when(c.expires_at)})"
        if c.message and c.state in ("rejected", "refused", "coolingDown", "expired"):
            detail += f": {c.message}"
        print(f"  {i}. {c.fingerprint:<20} {c.kind:<8} {c.id:<32} {detail}")
    if status.message:
        print(f"  {status.message}")


def check_exit_code(statuses: Sequence[ProviderStatus]) -> int:
    """0 all well; 1 a credential expired, rejected or missing; 2 one expires within 24 h."""
    if not statuses or any(s.size == 0 for s in statuses):
        return 1
    states = {c.state for s in statuses for c in s.credentials}
    if states & {"expired", "rejected"}:
        return 1
    if "expiring" in states:
        return 2
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from sidecar.store.health import problem_texts

    keypool = _keypool()
    statuses = keypool.status_all([args.provider] if args.provider else None)
    problems = problem_texts(keypool.store)
    if args.json:
        from sidecar import protocol  # cattrs: a third of the command's start-up

        result = protocol.StatusResult([protocol.provider_state(s) for s in statuses], problems)
        print(json.dumps(protocol.to_wire(result), indent=2, ensure_ascii=False))
    else:
        if not statuses:
            print("no credentials: add one with `llm-sidecar key add --provider anthropic`")
        for status in statuses:
            _print_status(status)
        for problem in problems:
            print(f"warning: {problem}")
    return check_exit_code(statuses) if args.check else 0


# -- key -----------------------------------------------------------------------


def _read_secrets(prompt: str) -> list[str]:
    """Secrets from stdin (one per line) or a no-echo prompt; never from argv."""
    if sys.stdin.isatty():
        import getpass

        return [getpass.getpass(prompt)]
    return [line.strip() for line in sys.stdin if line.strip()]


def cmd_key(args: argparse.Namespace) -> int:
    keypool = _keypool()
    provider = args.provider
    if args.action == "add":
        if args.login:
            cred, added = keypool.add_login(provider)
            print(f"{'added' if added else 'already pooled'}: {cred.fingerprint} ({cred.id})")
        else:
            secrets = _read_secrets(f"{provider} key (input hidden): ")
            if not secrets:
                return _fail("no key given on stdin")
            # One transaction for all of them: one by one, 1,000 keys took seconds.
            for cred, added in keypool.add_keys(provider, secrets):
                print(f"{'added' if added else 'already pooled'}: {cred.fingerprint} ({cred.id})")
        _print_status(keypool.status(provider))
    elif args.action == "list":
        _print_status(keypool.status(provider))
    elif args.action == "remove":
        removed = keypool.remove(provider, fingerprint=args.fingerprint, index=args.index)
        print(f"removed: {removed.fingerprint} ({removed.id})")
        _print_status(keypool.status(provider))
    elif args.action == "reset":
        keypool.reset(provider)
        _print_status(keypool.status(provider))
    return 0


# -- auth ----------------------------------------------------------------------


TOKEN_PREFIXES = {"anthropic": "sk-ant-oat01-"}


def cmd_auth(args: argparse.Namespace) -> int:
    from sidecar.credentials import Credential
    from sidecar.profiles import profile_id

    keypool = _keypool()
    provider = args.provider
    if args.auth_command == "paste-token":
        # Checked before the token is asked for: a name refused after pasting wastes it.
        profile = profile_id(provider, args.profile)
        secrets = _read_secrets(f"{provider} token (input hidden): ")
        if len(secrets) != 1:
            return _fail("paste exactly one token")
        token = secrets[0]
        prefix = TOKEN_PREFIXES.get(provider)
        if prefix and not token.startswith(prefix):
            return _fail(f"that is not a {provider} setup token: they start with {prefix}")
        if any(ch.isspace() for ch in token) or len(token) < 20:
            return _fail("that does not look like a token")
        expires = time.time() + args.expires_in_days * 86400 if args.expires_in_days else None
        cred = Credential(
            id=profile,
            provider=provider,
            kind="token",
            source="profile",
            secret=token,
            expires_at=expires,
        )
        keypool.save_profile(cred)
        print(f"saved {cred.fingerprint} as profile {cred.id}")
        return 0
    # auth order
    if args.order_action == "set":
        order = keypool.set_order(provider, args.ids)
    else:
        if args.order_action == "clear":
            keypool.clear_order(provider)
        order = keypool.store.read().order(provider)
    print("\n".join(order) if order else f"no explicit order for {provider}")
    return 0


# -- login and logout ------------------------------------------------------------


def _no_oauth(provider: str) -> int | None:
    from sidecar.oauth import OAUTH_PROVIDERS

    if provider in OAUTH_PROVIDERS:
        return None
    return _fail(
        f"{provider} has no OAuth login (only {', '.join(OAUTH_PROVIDERS)}): "
        f"add an API key with `llm-sidecar key add --provider {provider}`",
        2,
    )


def cmd_login(args: argparse.Namespace) -> int:
    import asyncio

    refused = _no_oauth(args.provider)
    if refused is not None:
        return refused
    return asyncio.run(_login(_keypool(), args.provider, args.paste, args.profile))


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


async def _login(keypool: KeyPool, provider: str, paste: bool, profile: str) -> int:
    import asyncio

    from sidecar.credentials import Credential
    from sidecar.errors import InvalidParams, LoginError
    from sidecar.oauth import LoginManager

    manager = LoginManager(keypool)
    try:
        login = await manager.start(provider, "paste" if paste else "auto", profile)
    except (InvalidParams, LoginError) as exc:
        return _fail(exc.message)
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
                    return _fail("no code was pasted; the login was cancelled")
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
        return _fail(exc.message)
    except asyncio.CancelledError:  # Ctrl-C
        await manager.cancel(login.id)
        raise
    finally:
        await manager.aclose()
    print(f"logged in: {cred.fingerprint} saved as profile {cred.id}")
    print(f"`llm-sidecar key add --login --provider {provider}` adds it to the key pool.")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    from sidecar.oauth import LoginManager

    refused = _no_oauth(args.provider)
    if refused is not None:
        return refused
    removed = LoginManager(_keypool()).logout(args.provider, args.profile)
    if removed is None:
        print(f"no {args.provider} login in profile {args.provider}:{args.profile}")
        return 0
    print(f"logged out: removed {removed.fingerprint} ({removed.id})")
    return 0


# -- import --------------------------------------------------------------------


def cmd_import(args: argparse.Namespace) -> int:
    from sidecar import sources

    keypool = _keypool()
    if args.source == "pi":
        auth = Path(args.auth).expanduser()
        rotation = Path(args.rotation).expanduser()
        results = sources.import_pi(keypool, auth, rotation)
    else:
        results = sources.import_claude_code(keypool, Path(args.file).expanduser())
        print(
            "note: the sidecar refreshes this login when it expires; Claude Code's own copy of "
            "the refresh token then stops working (refresh tokens are single-use). "
            "`llm-sidecar login anthropic` gives the sidecar a login of its own."
        )
    for r in results:
        print(f"{r.outcome}: {r.fingerprint} ({r.id})")
    if not results:
        print("nothing to import")
    return 0


# -- doctor --------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    from sidecar.catalog import PROVIDERS
    from sidecar.errors import SidecarError
    from sidecar.keypool import KeyPool
    from sidecar.oauth._config import cleartext_token_urls
    from sidecar.providers._config import INSECURE_HTTP_ENV, cleartext_base_urls
    from sidecar.sources import env_credentials
    from sidecar.store import Store
    from sidecar.store.health import findings

    # Each check stands alone: doctor is what the user runs when something is broken,
    # so one broken thing must not hide the others, nor crash it.
    store = Store.default()
    bad = 0
    print(f"home: {store.home}" + ("" if store.home.exists() else " (not created yet)"))
    for finding in findings(store):
        if args.fix and finding.repair is not None:
            try:
                print(f"fixed: {finding.repair()}")
                continue
            except OSError as exc:
                print(f"could not fix: {exc}")
        bad += 1
        print(f"problem: {finding.text}")  # each names its fix
    try:
        keypool = KeyPool(store)
        cleartext = [*cleartext_base_urls(keypool.env), *cleartext_token_urls(keypool.env)]
        for why, allowed in cleartext:
            if allowed:
                print(f"warning: {why.partition('; use')[0]} (allowed by {INSECURE_HTTP_ENV}=1)")
            else:
                bad += 1
                print(f"problem: {why}")
        for name in PROVIDERS:
            for cred in env_credentials(name, keypool.env).credentials:
                print(f"environment: {cred.id[4:]} = {cred.fingerprint} ({name})")
        for status in keypool.status_all():
            for c in status.credentials:
                if c.state in ("expired", "rejected", "expiring"):
                    bad += c.state != "expiring"
                    print(
                        f"{c.state}: {status.provider} {c.fingerprint} ({c.id}) {c.message or ''}"
                    )
    except SidecarError as exc:
        bad += 1
        print(f"problem: {exc.message}")
    print("all good" if not bad else f"{bad} problem(s)")
    return 1 if bad else 0


# -- ask and demo ---------------------------------------------------------------


def cmd_ask(args: argparse.Namespace) -> int:
    from sidecar.ask import run_ask

    prompt = " ".join(args.prompt) if args.prompt != ["-"] else sys.stdin.read()
    if not prompt.strip():
        return _fail("give a prompt (or - to read it from stdin)", 2)
    return run_ask(
        _keypool(),
        provider=args.provider or "anthropic",
        model=args.model,
        prompt=prompt,
        max_tokens=args.max_tokens,
        system=args.system,
    )


def cmd_gateway(args: argparse.Namespace) -> int:
    # Imported here: the stdio sidecar never loads the gateway (nor its HTTP server).
    from sidecar.gateway._run import env_lines, is_loopback_host, run

    if args.gateway_command == "env":
        from sidecar.gateway._token import gateway_token
        from sidecar.store import Store

        print("\n".join(env_lines(gateway_token(Store.default()), args.port, args.shell)))
        return 0
    if not is_loopback_host(args.host) and not args.allow_remote:
        return _fail(
            f"{args.host} is not a loopback address: anyone who can reach it could spend "
            "your keys; pass --allow-remote if you really mean it",
            2,
        )
    return run(args.host, args.port, allow_remote=args.allow_remote)


def cmd_demo(args: argparse.Namespace) -> int:
    from sidecar.demo import run_demo

    return run_demo()


# -- parser --------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    import argparse

    from sidecar.catalog import PROVIDERS

    parser = argparse.ArgumentParser(
        prog="llm-sidecar",
        description="Holds LLM credentials, rotates keys on rate limits, streams to editors.",
    )
    parser.add_argument("--version", action="version", version=f"llm-sidecar {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def provider_arg(p: argparse.ArgumentParser, required: bool = True) -> None:
        p.add_argument(
            "--provider",
            "-p",
            choices=list(PROVIDERS),
            required=required,
            metavar="PROVIDER",
        )

    serve = sub.add_parser("serve", help="run the stdio JSON-RPC server (the default)")
    serve.add_argument("--log-file", type=Path, help="log here instead of stderr")
    serve.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    serve.set_defaults(func=cmd_serve)

    status = sub.add_parser("status", help="show every provider's credentials and rotation state")
    provider_arg(status, required=False)
    status.add_argument("--json", action="store_true", help="print the sidecar/status result")
    status.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if a credential is expired or missing, 2 if one expires "
        "within 24 h, 0 otherwise",
    )
    status.set_defaults(func=cmd_status)

    key = sub.add_parser("key", help="manage the key pool")
    key_sub = key.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = key_sub.add_parser("add", help="add keys read from stdin (one per line) or a prompt")
    add.add_argument("--login", action="store_true", help="add the current login instead of a key")
    for name, help_text in (
        ("list", "list the pool"),
        ("remove", "remove a key by fingerprint, id or --index"),
        ("reset", "back to the first key, cooldowns cleared"),
    ):
        key_sub.add_parser(name, help=help_text)
    for p in key_sub.choices.values():
        provider_arg(p)
    key_sub.choices["remove"].add_argument("fingerprint", nargs="?")
    key_sub.choices["remove"].add_argument("--index", type=int, help="1-based pool position")
    key.set_defaults(func=cmd_key)

    auth = sub.add_parser("auth", help="tokens and credential order")
    auth_sub = auth.add_subparsers(dest="auth_command", required=True, metavar="ACTION")
    paste = auth_sub.add_parser("paste-token", help="store a setup token read from stdin")
    provider_arg(paste)
    paste.add_argument("--profile", default="default", help="profile name (default: default)")
    paste.add_argument("--expires-in-days", type=float, help="when the token expires")
    order = auth_sub.add_parser("order", help="get, set or clear the explicit order")
    order_sub = order.add_subparsers(dest="order_action", required=True, metavar="ACTION")
    for name, help_text in (
        ("get", "show the explicit order"),
        ("set", "try these credential ids first, in this order"),
        ("clear", "forget the explicit order"),
    ):
        provider_arg(order_sub.add_parser(name, help=help_text))
    order_sub.choices["set"].add_argument("ids", nargs="+", help="credential ids")
    auth.set_defaults(func=cmd_auth)

    login = sub.add_parser("login", help="log in with OAuth (Claude Pro/Max) and save the login")
    login.add_argument("provider", choices=list(PROVIDERS), metavar="PROVIDER", help="anthropic")
    login.add_argument(
        "--paste", action="store_true", help="paste the code shown instead of a loopback callback"
    )
    login.add_argument("--profile", default="default", help="profile name (default: default)")
    login.set_defaults(func=cmd_login)

    logout = sub.add_parser("logout", help="remove a saved login")
    logout.add_argument("provider", choices=list(PROVIDERS), metavar="PROVIDER", help="anthropic")
    logout.add_argument("--profile", default="default", help="profile name (default: default)")
    logout.set_defaults(func=cmd_logout)

    imp = sub.add_parser("import", help="copy credentials from pi or Claude Code (read-only)")
    imp_sub = imp.add_subparsers(dest="source", required=True, metavar="SOURCE")
    pi = imp_sub.add_parser("pi", help="~/.pi/agent/auth.json and key-rotation.json")
    pi.add_argument("--auth", default="~/.pi/agent/auth.json")
    pi.add_argument("--rotation", default="~/.pi/agent/key-rotation.json")
    cc = imp_sub.add_parser("claude-code", help="~/.claude/.credentials.json")
    cc.add_argument("--file", default="~/.claude/.credentials.json")
    imp.set_defaults(func=cmd_import)

    ask = sub.add_parser("ask", help="stream an answer to the terminal through the rotation engine")
    provider_arg(ask, required=False)
    ask.add_argument("--model", "-m", help="model name (default: the provider's default)")
    ask.add_argument("--max-tokens", type=int, default=1024)
    ask.add_argument("--system", help="a system prompt")
    ask.add_argument("prompt", nargs="+", help="the question; - reads it from stdin")
    ask.set_defaults(func=cmd_ask)

    demo = sub.add_parser("demo", help="a real session against the built-in provider stand-in")
    demo.set_defaults(func=cmd_demo)

    gateway = sub.add_parser(
        "gateway", help="serve the key pool on 127.0.0.1 as the providers' own HTTP APIs"
    )
    gateway.add_argument("--host", default="127.0.0.1", help="bind address (loopback only)")
    gateway.add_argument("--port", type=int, default=8765)
    gateway.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback --host (discouraged)"
    )
    gateway_sub = gateway.add_subparsers(dest="gateway_command", metavar="ACTION")
    gateway_env = gateway_sub.add_parser("env", help="print the variables clients read")
    gateway_env.add_argument("--shell", choices=["sh", "fish", "powershell"], default="sh")
    gateway_env.add_argument("--port", type=int, default=8765)
    gateway.set_defaults(func=cmd_gateway)

    doctor = sub.add_parser("doctor", help="check permissions, files, environment and expiries")
    doctor.add_argument("--fix", action="store_true", help="fix file permissions")
    doctor.set_defaults(func=cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        # Editors run the bare command: serve without building the parser.
        from sidecar.server import serve

        return serve()
    if argv[0].startswith("--log"):
        argv = ["serve", *argv]
    args = build_parser().parse_args(argv)
    if (
        args.command == "key"
        and args.action == "remove"
        and ((args.fingerprint is None) == (args.index is None))
    ):
        return _fail("give a fingerprint (or id), or --index, of the key to remove", 2)
    try:
        func: Command = args.func
        return func(args)
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError) as exc:
        return _fail(str(exc))
    except Exception as exc:
        from sidecar.errors import SidecarError

        if isinstance(exc, SidecarError):
            return _fail(exc.message)
        raise
