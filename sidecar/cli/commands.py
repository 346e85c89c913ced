"""The ``llm-sidecar`` subcommands that act on the store and return: one function each.

Unlike :mod:`sidecar.cli.login` (the interactive OAuth loop) and :mod:`sidecar.cli.parser`
(the arguments), these are plain calls into the key pool; modules are imported inside
each so that ``serve`` starts fast.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from sidecar.rotation.headroom import Window
    from sidecar.rotation.keypool import KeyPool
    from sidecar.rotation.status import ProviderStatus
    from sidecar.settings import Settings
    from sidecar.team import Probe, TeamConfig


def load_settings() -> Settings:
    """The settings of this process and the user's home; BadSetting (naming the variable)
    for a bad value.

    The CLI's half of the one policy for bad settings (see sidecar.settings): a command
    refuses to start rather than run on a default the user did not ask for.
    """
    from sidecar.settings import Settings

    settings = Settings.load()
    settings.check()
    return settings


def default_keypool(settings: Settings) -> KeyPool:
    """The key pool of the home ``settings`` name, finding keys in their environment."""
    from sidecar.rotation.keypool import KeyPool
    from sidecar.store import Store

    return KeyPool(Store(settings.home), settings.env)


def fail(message: str, code: int = 1) -> int:
    print(f"llm-sidecar: {message}", file=sys.stderr)
    return code


# -- serve ---------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from sidecar.rpc.server import serve

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
        elif c.message and c.state == "outOfCredit":
            detail = c.message
        print(f"  {i}. {c.fingerprint:<20} {c.kind:<8} {c.id:<32} {detail}")
        for m in c.model_cooldowns:
            said = f": {m.message}" if m.message else ""
            print(f"       {m.model}: cooling down until {_when(m.until)} ({m.reason}){said}")
        for w in c.windows:
            print(f"       {_window_text(w)}")
        if c.usage is not None:
            u = c.usage
            last = f", last {_when(u.last_used)}" if u.last_used else ""
            whose = "the team's" if c.counted == "team" else "this machine's"
            print(f"       used: {u.requests} answered, {u.failures} failed{last} ({whose})")
    if status.message:
        print(f"  {status.message}")


def _window_text(w: Window) -> str:
    """``sonnet requests: 3/50 left (6%), resets 14:05`` for one headroom window."""
    scope = "account" if w.account else (w.model or "")
    if w.utilization is not None:
        figures = f"{w.utilization * 100:.0f}% used"
    elif w.limit is not None and w.remaining is not None:
        figures = f"{w.remaining:g}/{w.limit:g} left"
    else:
        figures = "?"
    left = w.fraction_left
    percent = f" ({left * 100:.0f}%)" if left is not None and w.utilization is None else ""
    status = f", {w.status}" if w.status else ""
    clock = time.strftime("%H:%M:%S", time.localtime(w.reset_at)) if w.reset_at else ""
    reset = f", resets {clock}" if clock else ""
    return f"{scope} {w.name}: {figures}{percent}{status}{reset}".strip()


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

    settings = load_settings()
    keypool = default_keypool(settings)
    team = settings.team
    seen = _team_usage(keypool, team) if team is not None else None
    statuses = keypool.status_all([args.provider] if args.provider else None)
    problems = problem_texts(keypool.store)
    if args.json:
        from sidecar.rpc import protocol  # cattrs: a third of the command's start-up

        state = protocol.SharedStateInfo()
        if team is not None and seen is not None:
            online = seen.online
            state = protocol.SharedStateInfo("redis", team.shown, "online" if online else "offline")
        result = protocol.StatusResult(
            [protocol.provider_state(s) for s in statuses], problems, state
        )
        print(json.dumps(protocol.to_wire(result), indent=2, ensure_ascii=False))
    else:
        if not statuses:
            print("no credentials: add one with `llm-sidecar key add --provider anthropic`")
        for status in statuses:
            _print_status(status)
        for problem in problems:
            print(f"warning: {problem}")
        if team is not None and seen is not None:
            print(f"team state: {team.shown}: {seen.describe()}")
    return check_exit_code(statuses) if args.check else 0


def _team_usage(keypool: KeyPool, team: TeamConfig) -> Probe:
    """Probe the team's server and, when it answers, show the team's usage counts."""
    from sidecar.team import usage

    seen = _probe_team(team)
    if seen.online:
        data = keypool.store.read()
        creds = [c for p in keypool.providers(data) for c in keypool.credentials(p, data)]
        keypool.team_usage = usage(team, creds)
    return seen


def _probe_team(team: TeamConfig) -> Probe:
    from sidecar.team import probe  # redis-py: only when a team state is set

    return probe(team)


# -- key -----------------------------------------------------------------------


def _read_secrets(prompt: str) -> list[str]:
    """Secrets from stdin (one per line) or a no-echo prompt; never from argv."""
    if sys.stdin.isatty():
        import getpass

        return [getpass.getpass(prompt)]
    return [line.strip() for line in sys.stdin if line.strip()]


def cmd_key(args: argparse.Namespace) -> int:
    settings = load_settings()
    keypool = default_keypool(settings)
    provider = args.provider
    if args.action == "add":
        if args.login:
            cred, added = keypool.add_login(provider)
            print(f"{'added' if added else 'already pooled'}: {cred.fingerprint} ({cred.id})")
        else:
            secrets = _read_secrets(f"{provider} key (input hidden): ")
            if not secrets:
                return fail("no key given on stdin")
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
        if settings.team is not None:  # the whole team tries the keys again
            from sidecar.team import forget

            failed = forget(settings.team, provider, keypool.credentials(provider))
            if failed is not None:
                print(f"warning: team state not reset ({failed}): other machines keep theirs")
        _print_status(keypool.status(provider))
    return 0


# -- auth ----------------------------------------------------------------------


TOKEN_PREFIXES = {"anthropic": "sk-ant-oat01-"}


def cmd_auth(args: argparse.Namespace) -> int:
    from sidecar.credentials import Credential
    from sidecar.profiles import profile_id

    keypool = default_keypool(load_settings())
    provider = args.provider
    if args.auth_command == "paste-token":
        # Checked before the token is asked for: a name refused after pasting wastes it.
        profile = profile_id(provider, args.profile)
        secrets = _read_secrets(f"{provider} token (input hidden): ")
        if len(secrets) != 1:
            return fail("paste exactly one token")
        token = secrets[0]
        prefix = TOKEN_PREFIXES.get(provider)
        if prefix and not token.startswith(prefix):
            return fail(f"that is not a {provider} setup token: they start with {prefix}")
        if any(ch.isspace() for ch in token) or len(token) < 20:
            return fail("that does not look like a token")
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
    if args.auth_command == "policy":
        if args.policy_action == "set":
            keypool.set_policy(provider, args.policy)
        print(f"{provider}: {keypool.policy(provider)}")
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


# -- import --------------------------------------------------------------------


def cmd_import(args: argparse.Namespace) -> int:
    from sidecar import sources

    keypool = default_keypool(load_settings())
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
    from sidecar.oauth._config import cleartext_token_urls
    from sidecar.providers._config import INSECURE_HTTP_ENV, cleartext_base_urls
    from sidecar.rotation.keypool import KeyPool
    from sidecar.settings import Settings
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
        settings = Settings.load(store.home)
        for problem in settings.problems:
            bad += 1
            print(f"problem: {problem.message}")
        keypool = KeyPool(store, settings.env)
        cleartext = [*cleartext_base_urls(settings.env), *cleartext_token_urls(settings.env)]
        for why, allowed in cleartext:
            if allowed:
                print(f"warning: {why.partition('; use')[0]} (allowed by {INSECURE_HTTP_ENV}=1)")
            else:
                bad += 1
                print(f"problem: {why}")
        for name in PROVIDERS:
            for cred in env_credentials(name, settings.env).credentials:
                print(f"environment: {cred.id[4:]} = {cred.fingerprint} ({name})")
        if settings.team is not None:
            seen = _probe_team(settings.team)
            bad += not seen.online
            said = "team state" if seen.online else "problem: team state"
            print(f"{said}: {settings.team.shown}: {seen.describe()}")
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
    from sidecar.cli.ask import run_ask

    prompt = " ".join(args.prompt) if args.prompt != ["-"] else sys.stdin.read()
    if not prompt.strip():
        return fail("give a prompt (or - to read it from stdin)", 2)
    settings = load_settings()
    return run_ask(
        default_keypool(settings),
        settings,
        provider=args.provider or "anthropic",
        model=args.model,
        prompt=prompt,
        max_tokens=args.max_tokens,
        system=args.system,
    )


def cmd_gateway(args: argparse.Namespace) -> int:
    # Imported here: the stdio sidecar never loads the gateway (nor its HTTP server).
    from sidecar.gateway._run import env_lines, run
    from sidecar.loopback import is_loopback

    if args.gateway_command == "env":
        from sidecar.gateway._token import gateway_token
        from sidecar.store import Store

        print("\n".join(env_lines(gateway_token(Store.default()), args.port, args.shell)))
        return 0
    if not is_loopback(args.host) and not args.allow_remote:
        return fail(
            f"{args.host} is not a loopback address: anyone who can reach it could spend "
            "your keys; pass --allow-remote if you really mean it",
            2,
        )
    return run(args.host, args.port, allow_remote=args.allow_remote)


def cmd_demo(args: argparse.Namespace) -> int:
    from sidecar.cli.demo import run_demo

    return run_demo()


# -- parser --------------------------------------------------------------------
