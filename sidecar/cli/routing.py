"""``llm-sidecar fallback`` and ``llm-sidecar budget``: where requests go, what they may cost.

Unlike :mod:`sidecar.cli.commands` (credentials and the key pool), these edit the
user's fallback list and daily budgets through :class:`sidecar.rotation.routing.Routing`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from sidecar.rotation.routing import Routing

__all__ = ["cmd_budget", "cmd_fallback"]


def _routing() -> Routing:
    from sidecar.rotation.routing import Routing
    from sidecar.store import Store

    return Routing(Store.default())


def cmd_fallback(args: argparse.Namespace) -> int:
    from sidecar.catalog import PROVIDERS
    from sidecar.cli.commands import fail
    from sidecar.rotation.fallback import parse_target

    routing = _routing()
    if args.fallback_action == "list":
        rules = routing.rules()
        for problem in routing.problems.values():
            print(f"problem: {problem}; no fallback applies until `fallback add` rewrites it")
        if not rules:
            print("no fallbacks: a provider that cannot answer returns its error")
        for rule in rules:
            print(f"{rule.provider} {rule.pattern}  →  " + "  →  ".join(map(str, rule.to)))
        return 0
    try:
        targets = [parse_target(t, PROVIDERS) for t in args.to or []]
    except ValueError as exc:
        return fail(f"--to {exc}", 2)
    if args.fallback_action == "add":
        rule = routing.add_fallback(args.provider, args.model, targets)
        print(f"{rule.provider} {rule.pattern}  →  " + "  →  ".join(map(str, rule.to)))
        return 0
    if len(targets) > 1:
        return fail("remove takes at most one --to (without it, the whole rule goes)", 2)
    if not routing.remove_fallback(args.provider, args.model, targets[0] if targets else None):
        return fail(
            f"no fallback for {args.provider} {args.model}"
            + (f" to {targets[0]}" if targets else "")
        )
    print(f"removed the fallback for {args.provider} {args.model}")
    return 0


def cmd_budget(args: argparse.Namespace) -> int:
    from sidecar.cli.commands import fail
    from sidecar.rotation.budget import next_reset

    routing = _routing()
    if args.budget_action == "set":
        routing.set_budget(args.provider, args.daily)
        print(f"{args.provider}: at most ${args.daily:.2f} a day (resets at local midnight)")
        return 0
    if args.budget_action == "clear":
        if not routing.clear_budget(args.provider):
            return fail(f"{args.provider} has no daily budget")
        print(f"{args.provider}: no daily budget")
        return 0
    budgets = routing.budgets()
    for problem in routing.problems.values():
        print(f"problem: {problem}; no budget applies until `budget set` rewrites it")
    if args.provider:
        budgets = {k: v for k, v in budgets.items() if k == args.provider}
    if not budgets:
        print("no daily budgets")
        return 0
    resets = time.strftime("%Y-%m-%d %H:%M", time.localtime(next_reset(time.time())))
    for provider, daily in sorted(budgets.items()):
        spent = routing.spent_today(provider)
        state = (
            "spent: requests are refused or go to a fallback"
            if spent >= daily
            else f"${daily - spent:.2f} left"
        )
        print(f"{provider}  ${spent:.2f} of ${daily:.2f} today, {state}; resets {resets}")
    return 0
