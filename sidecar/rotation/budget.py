"""The daily spend guard, pure: budgets, the day's spend, and the error past a budget.

Unlike :mod:`~sidecar.pricing` (what one request cost), this adds the costs of a
provider's requests up per day and says whether the next one may go. A day is the
**local** calendar day of the machine: the budget resets at local midnight, when a
user's "today" does. The files are read and written by :mod:`sidecar.rotation.routing`.

``budgets.json`` (the user's)::

    {"version": 1, "daily": {"anthropic": 5.0}}

``spend.json`` (the sidecar's, kept for the last :data:`KEEP_DAYS` days)::

    {"version": 1, "days": {"2026-12-05": {"anthropic": 1.234567}}}

Spending is counted for a provider only while it has a budget: without one the
sidecar writes nothing per request.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sidecar import paths
from sidecar.errors import BudgetExceeded

__all__ = [
    "BUDGETS_FILE",
    "KEEP_DAYS",
    "SPEND_FILE",
    "add_spend",
    "budgets_from_doc",
    "day_of",
    "exceeded",
    "next_reset",
    "spent_on",
]

BUDGETS_FILE = paths.BUDGETS_FILE
SPEND_FILE = paths.SPEND_FILE
KEEP_DAYS = 7


def _dollars(value: object) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    return float(value) if ok else None  # type: ignore[arg-type]


def day_of(now: float) -> str:
    """The local calendar day of ``now`` (epoch seconds), ``YYYY-MM-DD``."""
    return time.strftime("%Y-%m-%d", time.localtime(now))


def next_reset(now: float) -> float:
    """The next local midnight after ``now``: when the day's spend starts again at 0."""
    t = time.localtime(now)
    # mktime normalises day 32 into the next month, and -1 lets it pick summer time.
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday + 1, 0, 0, 0, 0, 0, -1))


def budgets_from_doc(doc: Mapping[str, Any] | None) -> dict[str, float]:
    """Provider → dollars a day, from ``budgets.json``; entries it cannot use skipped."""
    daily = doc.get("daily") if isinstance(doc, Mapping) else None
    if not isinstance(daily, dict):
        return {}
    return {k: d for k, v in daily.items() if isinstance(k, str) and (d := _dollars(v)) is not None}


def spent_on(doc: Mapping[str, Any] | None, day: str, provider: str) -> float:
    """Dollars ``provider`` cost on ``day``, per ``spend.json``."""
    days = doc.get("days") if isinstance(doc, Mapping) else None
    today = days.get(day) if isinstance(days, dict) else None
    spent = _dollars(today.get(provider)) if isinstance(today, dict) else None
    return spent or 0.0


def add_spend(doc: dict[str, Any], day: str, provider: str, dollars: float) -> None:
    """Add ``dollars`` to ``provider``'s spend on ``day`` in ``doc`` (``spend.json``),
    dropping days older than the last :data:`KEEP_DAYS`."""
    days = doc.get("days")
    if not isinstance(days, dict):
        days = {}
    doc["version"] = 1
    found = days.get(day)
    today: dict[str, Any] = found if isinstance(found, dict) else {}
    today[provider] = round(spent_on({"days": {day: today}}, day, provider) + dollars, 9)
    days[day] = today
    # ISO dates sort as days do: keep the latest few.
    doc["days"] = {d: days[d] for d in sorted(days)[-KEEP_DAYS:]}


def exceeded(provider: str, budget: float, spent: float, now: float) -> BudgetExceeded:
    """The error of a request refused because ``provider``'s daily budget is spent."""
    resets = next_reset(now)
    hours, rest = divmod(max(0, int(resets - now)), 3600)
    when = time.strftime("%H:%M", time.localtime(resets))
    return BudgetExceeded(
        f"{provider}'s daily budget of ${budget:.2f} is spent (${spent:.2f} today); it resets"
        f" at local midnight ({when}, in {hours} h {rest // 60} min). Raise it with"
        f" `llm-sidecar budget set --provider {provider} --daily N`, or add a fallback"
        f" with `llm-sidecar fallback add`",
        {
            "provider": provider,
            "budget": budget,
            "spent": round(spent, 6),
            "resetsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(resets)),
        },
        resets_at=resets,
    )
