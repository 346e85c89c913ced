"""The ``llm-sidecar`` argument parser: every subcommand and its options, nothing run.

Built only when a subcommand is given: the bare command (an editor spawning the
server) never pays for argparse.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sidecar import __version__
from sidecar.cli.commands import (
    cmd_ask,
    cmd_auth,
    cmd_demo,
    cmd_doctor,
    cmd_gateway,
    cmd_import,
    cmd_key,
    cmd_serve,
    cmd_status,
)
from sidecar.cli.login import cmd_login, cmd_logout
from sidecar.cli.routing import cmd_budget, cmd_fallback

if TYPE_CHECKING:
    import argparse


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
    policy = auth_sub.add_parser("policy", help="which key when: sticky (default) or primary")
    policy_sub = policy.add_subparsers(dest="policy_action", required=True, metavar="ACTION")
    provider_arg(policy_sub.add_parser("get", help="show the pool policy"))
    policy_set = policy_sub.add_parser(
        "set",
        help="sticky: stay on the key that answers (keeps the prompt cache warm); "
        "primary: back to the first key as soon as it is usable",
    )
    provider_arg(policy_set)
    policy_set.add_argument("policy", choices=["sticky", "primary"])
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

    _routing_commands(sub, provider_arg)

    doctor = sub.add_parser("doctor", help="check permissions, files, environment and expiries")
    doctor.add_argument("--fix", action="store_true", help="fix file permissions")
    doctor.set_defaults(func=cmd_doctor)
    return parser


def _routing_commands(sub: Any, provider_arg: Callable[..., None]) -> None:
    """``fallback`` and ``budget``: where a request goes when its provider cannot answer,
    and what a provider may cost a day."""
    fallback = sub.add_parser(
        "fallback", help="where requests go when every credential of a provider is unusable"
    )
    fallback_sub = fallback.add_subparsers(dest="fallback_action", required=True, metavar="ACTION")
    fallback_sub.add_parser("list", help="show the fallbacks, in order")
    for name, help_text in (
        ("add", "append targets to the fallbacks of a provider and model pattern"),
        ("remove", "remove a rule, or one of its targets with --to"),
    ):
        p = fallback_sub.add_parser(name, help=help_text)
        provider_arg(p)
        p.add_argument(
            "--model", required=True, help="the requested model, a pattern: 'claude-sonnet-4-5*'"
        )
        p.add_argument(
            "--to",
            action="append",
            required=name == "add",
            metavar="PROVIDER:MODEL",
            help="where to go instead, e.g. openrouter:anthropic/claude-sonnet-4.5 (repeatable)",
        )
    fallback.set_defaults(func=cmd_fallback)

    budget = sub.add_parser("budget", help="a daily spending limit in US dollars per provider")
    budget_sub = budget.add_subparsers(dest="budget_action", required=True, metavar="ACTION")
    budget_set = budget_sub.add_parser("set", help="refuse requests past this many dollars a day")
    provider_arg(budget_set)
    budget_set.add_argument("--daily", type=float, required=True, help="US dollars a day")
    provider_arg(budget_sub.add_parser("show", help="budgets and today's spend"), required=False)
    provider_arg(budget_sub.add_parser("clear", help="remove a provider's budget"))
    budget.set_defaults(func=cmd_budget)
