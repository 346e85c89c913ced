"""The user's fallbacks and daily budgets, and the day's spend, in the home's files.

Unlike :mod:`~sidecar.rotation.keypool` (credentials and rotation state), this is
the only reader and writer of ``fallbacks.json``, ``budgets.json`` and
``spend.json``: every change goes through the store's lock and is written 0600,
atomically (:meth:`sidecar.store.Store.update_file`). The rules themselves are pure
(:mod:`~sidecar.rotation.fallback`, :mod:`~sidecar.rotation.budget`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from sidecar.errors import StoreError
from sidecar.rotation import budget as b
from sidecar.rotation.fallback import (
    FALLBACKS_FILE,
    Rule,
    Target,
    rules_from_doc,
    rules_to_doc,
    targets_for,
)
from sidecar.store import Store

__all__ = ["Routing"]

log = logging.getLogger(__name__)


class Routing:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        # Parsed budgets by the file's (mtime, size): read before every request, rarely changed.
        self._budgets: tuple[tuple[int, int] | None, dict[str, float]] = (None, {})
        self.problems: dict[str, str] = {}  # file name -> why it is not used

    def _read(self, name: str) -> dict[str, Any] | None:
        """A file's document; a broken one is logged, kept for ``problems``, and read as
        absent (a request must not fail on it), until a command rewrites it."""
        try:
            doc = self.store.read_file(name)
        except StoreError as exc:
            if self.problems.get(name) != exc.message:
                log.warning("%s; it is ignored until fixed", exc.message)
            self.problems[name] = exc.message
            return None
        self.problems.pop(name, None)
        return doc

    # -- fallbacks -----------------------------------------------------------------

    def rules(self) -> list[Rule]:
        return rules_from_doc(self._read(FALLBACKS_FILE))

    def targets(self, provider: str, model: str) -> list[Target]:
        """Where a request to ``provider``/``model`` may go when its provider cannot answer."""
        return targets_for(self.rules(), provider, model)

    def add_fallback(self, provider: str, pattern: str, to: Sequence[Target]) -> Rule:
        """Append ``to`` to the rule for ``provider``/``pattern`` (made if new); the rule."""

        def change(doc: dict[str, Any]) -> Rule:
            rules = rules_from_doc(doc)
            i = next(
                (i for i, r in enumerate(rules) if (r.provider, r.pattern) == (provider, pattern)),
                None,
            )
            old = rules[i].to if i is not None else ()
            rule = Rule(provider, pattern, (*old, *(t for t in dict.fromkeys(to) if t not in old)))
            if i is None:
                rules.append(rule)
            else:
                rules[i] = rule
            _write_rules(doc, rules)
            return rule

        return self.store.update_file(FALLBACKS_FILE, change)

    def remove_fallback(self, provider: str, pattern: str, to: Target | None = None) -> bool:
        """Forget the rule for ``provider``/``pattern`` (only its target ``to`` when given);
        False when there was nothing to remove."""

        def change(doc: dict[str, Any]) -> bool:
            rules = rules_from_doc(doc)
            kept: list[Rule] = []
            removed = False
            for rule in rules:
                if (rule.provider, rule.pattern) != (provider, pattern):
                    kept.append(rule)
                    continue
                left = () if to is None else tuple(t for t in rule.to if t != to)
                removed = removed or len(left) < len(rule.to)
                if left:
                    kept.append(Rule(rule.provider, rule.pattern, left))
            if removed:
                _write_rules(doc, kept)
            return removed

        return self.store.update_file(FALLBACKS_FILE, change)

    # -- budgets -------------------------------------------------------------------

    def budgets(self) -> dict[str, float]:
        """Provider → dollars a day (none: no budget)."""
        try:
            st = os.stat(self.store.home / b.BUDGETS_FILE)
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            return {}
        if stamp != self._budgets[0]:
            self._budgets = (stamp, b.budgets_from_doc(self._read(b.BUDGETS_FILE)))
        return self._budgets[1]

    def set_budget(self, provider: str, dollars: float) -> None:
        if not dollars > 0 or dollars == float("inf"):
            raise ValueError("the daily budget is a positive number of dollars, e.g. --daily 5")

        def change(doc: dict[str, Any]) -> None:
            doc["version"] = 1
            doc["daily"] = {**b.budgets_from_doc(doc), provider: float(dollars)}

        self.store.update_file(b.BUDGETS_FILE, change)

    def clear_budget(self, provider: str) -> bool:
        """Remove ``provider``'s budget; False when it had none."""

        def change(doc: dict[str, Any]) -> bool:
            daily = b.budgets_from_doc(doc)
            if daily.pop(provider, None) is None:
                return False
            doc["version"] = 1
            doc["daily"] = daily
            return True

        return self.store.update_file(b.BUDGETS_FILE, change)

    def spent_today(self, provider: str) -> float:
        return b.spent_on(self._read(b.SPEND_FILE), b.day_of(self.clock()), provider)

    def check_budget(self, provider: str) -> None:
        """Raise :class:`~sidecar.errors.BudgetExceeded` when ``provider``'s budget is spent."""
        budget = self.budgets().get(provider)
        if budget is None:
            return
        spent = self.spent_today(provider)
        if spent >= budget:
            raise b.exceeded(provider, budget, spent, self.clock())

    def record_spend(self, provider: str, dollars: float) -> None:
        """Count ``dollars`` against today's spend, when ``provider`` has a budget."""
        if dollars <= 0 or provider not in self.budgets():
            return
        day = b.day_of(self.clock())
        self.store.update_file(b.SPEND_FILE, lambda doc: b.add_spend(doc, day, provider, dollars))


def _write_rules(doc: dict[str, Any], rules: list[Rule]) -> None:
    doc["version"] = 1
    doc["fallbacks"] = rules_to_doc(rules)
