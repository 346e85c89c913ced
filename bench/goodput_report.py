"""The goodput benchmark's results: per-cell figures, the goals, the table and the plot."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.goodput_contenders import INPUT_TOKENS, OUTPUT_TOKENS, REQUESTS
from bench.goodput_retry import WITHIN_S
from bench.sizes import Sizes
from bench.stats import Section, median, percentile

__all__ = ["GOAL_WAIT_S", "PLOT", "Cell", "plot", "section"]

GOAL_WAIT_S = 1.0
PLOT = Path(__file__).resolve().parent.parent / "docs" / "goodput.png"


@dataclass
class Cell:
    """Every run of one contender at one (K, load)."""

    keys: int
    load: float
    contender: str
    arrivals: int = 0
    served: int = 0
    errors: int = 0
    errors_with_retry: int = 0  # errors that told the user when to retry
    retry_right: int = 0  # ... at a moment that proved right within a second
    retry_early: int = 0  # ... too early: a request then would have been refused
    retry_late: int = 0  # ... over a second late: one would already have been served
    replay_mismatches: int = 0  # the replayed buckets disagreed with the fake (should be 0)
    limited: int = 0  # upstream 429s
    overloaded: int = 0  # upstream 529s
    moves: int = 0
    fractions: list[float] = field(default_factory=list)  # served within D / C, per run
    waits_ms: list[float] = field(default_factory=list)  # every served request
    wall_s: list[float] = field(default_factory=list)  # per run: arrivals, then the last answer

    @property
    def fraction(self) -> float:
        return median(self.fractions)

    @property
    def error_rate(self) -> float:
        return self.errors / self.arrivals if self.arrivals else 0.0

    @property
    def limited_per_served(self) -> float:
        return self.limited / self.served if self.served else math.inf

    @property
    def slow(self) -> int:
        return sum(1 for w in self.waits_ms if w > GOAL_WAIT_S * 1000)


# -- the picture -----------------------------------------------------------------------------


def plot(cells: Sequence[Cell], out: Path | io.BytesIO) -> bool:
    """Served fraction of capacity and user-visible error rate against offered load, one
    line per contender, one column per pool size. False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    pools = sorted({c.keys for c in cells})
    names = list(dict.fromkeys(c.contender for c in cells))
    fig, axes = plt.subplots(
        2, len(pools), figsize=(4.2 * len(pools), 6.4), sharex=True, squeeze=False
    )
    for column, k in enumerate(pools):
        top, bottom = axes[0][column], axes[1][column]
        loads = sorted({c.load for c in cells if c.keys == k})
        top.plot(loads, [min(x, 1.0) for x in loads], ":", color="grey", label="ideal")
        for number, name in enumerate(names):
            mine = sorted((c for c in cells if c.keys == k and c.contender == name), key=_load)
            if not mine:  # not run at this K (the floor, say): no empty line in the legend
                continue
            xs = [c.load for c in mine]
            # A contender keeps its colour in every column, whoever is missing there.
            style = {"marker": "o", "label": name, "color": f"C{number}"}
            top.plot(xs, [c.fraction for c in mine], **style)
            bottom.plot(xs, [c.error_rate for c in mine], **style)
        top.set_title(f"K = {k} key{'s' if k > 1 else ''}")
        top.set_ylim(0, 1.1)
        bottom.set_ylim(-0.02, 1.0)
        bottom.set_xlabel("offered load (× capacity C)")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("served within D / capacity")
    axes[1][0].set_ylabel("user-visible errors / request")
    legend: dict[str, Any] = {}  # every contender once, from whichever column has it
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    fig.legend(
        list(legend.values()),
        list(legend),
        loc="lower center",
        ncol=3,
        fontsize="small",
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    fig.savefig(out, format="png", dpi=100)
    plt.close(fig)
    return True


def _load(cell: Cell) -> float:
    return cell.load


# -- the goals ---------------------------------------------------------------------------


def _short(name: str) -> str:
    """The contender's name in a goal's row: "llm-sidecar" or "llm-sidecar gateway"."""
    return name.split(" (", 1)[0]


def _goals(section: Section, who: str, k: int, mine: dict[float, Cell], theirs: list[Cell]) -> None:
    """The issue's goals for one llm-sidecar contender at one pool size K."""
    low = [c for load, c in mine.items() if load <= 0.9]
    high = [c for load, c in mine.items() if load > 1.0]
    if low:
        errors = sum(c.errors for c in low)
        slow = sum(c.slow for c in low)
        section.add(
            f"{who}, K = {k}, load ≤ 0.9×C: user-visible errors; served requests "
            f"waiting > {GOAL_WAIT_S:g} s",
            f"{errors}; {slow} (of {sum(c.arrivals for c in low)})",
            "0; 0",
            errors == 0 and slow == 0,
        )
    if high:
        loads = ", ".join(f"{c.load:g}×: {c.fraction:.2f}" for c in high)
        section.add(
            f"{who}, K = {k}, load > C: served within D / C",
            loads,
            "≥ 0.95",
            all(c.fraction >= 0.95 for c in high),
        )
        errors = sum(c.errors for c in high)
        told = sum(c.errors_with_retry for c in high)
        right = sum(c.retry_right for c in high)
        section.add(
            f"{who}, K = {k}, load > C: user-visible errors whose retry time proved right "
            f"within {WITHIN_S:g} s (errors that carried one)",
            f"{right} of {errors} ({told})",
            "every error",
            right == errors,
        )
        spent = ", ".join(f"{c.load:g}×: {c.limited_per_served:.2f}" for c in high)
        section.add(
            f"{who}, K = {k}, load > C: upstream 429s per served request",
            spent,
            "≤ 0.05",
            all(c.limited_per_served <= 0.05 for c in high),
        )
    if theirs:
        ahead_served = sum(
            1
            for load, c in mine.items()
            if all(c.fraction > r.fraction for r in theirs if r.load == load)
        )
        ahead_429 = sum(
            1
            for load, c in mine.items()
            if all(c.limited_per_served < r.limited_per_served for r in theirs if r.load == load)
        )
        section.add(
            f"{who}, K = {k}: ahead of both LiteLLM Routers on served / C; on 429s "
            "per served request",
            f"at {ahead_served} of {len(mine)} loads; at {ahead_429} of {len(mine)}",
            "every load",
            ahead_served == ahead_429 == len(mine),
        )


# -- the table ---------------------------------------------------------------


def _spread(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def _retry(cell: Cell) -> str:
    """Of the errors: how many named a retry time that proved right, and what the
    others did wrong."""
    if not cell.errors:
        return "–"
    wrong = [
        f"{n} {what}"
        for n, what in (
            (cell.errors - cell.errors_with_retry, "none given"),
            (cell.retry_early, "early"),
            (cell.retry_late, "late"),
        )
        if n
    ]
    return f"{cell.retry_right} / {cell.errors}" + (f" ({', '.join(wrong)})" if wrong else "")


def _row(cell: Cell) -> str:
    waits = cell.waits_ms
    p50, p99 = (percentile(waits, 50), percentile(waits, 99)) if waits else (math.nan, math.nan)
    limited = f"{cell.limited_per_served:.2f}" if cell.served else f"{cell.limited} (none served)"
    cells = [
        str(cell.keys),
        f"{cell.load:.1f}",
        cell.contender,
        f"{cell.served} / {cell.arrivals}",
        _spread(cell.fractions),
        str(cell.errors),
        _retry(cell),
        limited,
        f"{p50:,.0f} / {p99:,.0f}",
        str(cell.slow),
        str(cell.moves),
    ]
    return "| " + " | ".join(cells) + " |"


def section(
    cells: list[Cell], sizes: Sizes, *, use_litellm: bool, method: str, clients: int, sidecars: int
) -> Section:
    """The section: goals, the plot (written to docs/ unless a smoke run) and the table."""
    seconds, rounds, period = sizes.goodput_seconds, sizes.goodput_rounds, sizes.goodput_period
    section = Section(
        "Goodput under rate limits",
        f"K = {', '.join(map(str, sizes.goodput_pools))} keys, each "
        f"{REQUESTS} requests, {INPUT_TOKENS:,} input and {OUTPUT_TOKENS:,} output tokens per "
        f"{period:g} s (a minute scaled {60 / period:g}×), so C = {REQUESTS / period:g} "
        f"requests/s per key plus the full bucket at the start; D = {seconds:g} s, "
        f"{rounds} run{'s' if rounds > 1 else ''} per (K, load, contender), "
        f"N = {clients} clients, S = {sidecars} sidecar processes. {method}",
        block="goodput",
    )
    sidecar = [c for c in cells if c.contender.startswith("llm-sidecar")]
    routers = [c for c in cells if c.contender.startswith("LiteLLM")]
    for name in dict.fromkeys(c.contender for c in sidecar):
        for k in sizes.goodput_pools:
            mine = {c.load: c for c in sidecar if c.keys == k and c.contender == name}
            if not mine:  # not run at this K (``primary`` at K = 1): no vacuous goals
                continue
            theirs = [c for c in routers if c.keys == k]
            _goals(section, _short(name), k, mine, theirs)
    header = (
        "| K | load | contender | served / arrived | served within D / C | user-visible "
        "errors | retry time right | 429s per served | wait p50 / p99 (ms) | waited > 1 s | "
        "moved keys |"
    )
    table = [header, "|" + "---|" * 11, *(_row(c) for c in cells)]
    out = PLOT if not sizes.smoke else io.BytesIO()
    drawn = plot(cells, out)
    picture = (
        f"![served fraction of capacity and user-visible errors against offered load]({PLOT.name})"
        if drawn and not sizes.smoke
        else "matplotlib is not installed: no plot."
        if not drawn
        else "(smoke run: the plot was drawn in memory, not written)"
    )
    section.extra += [picture, "\n".join(table)]
    if not use_litellm:
        section.extra.append("LiteLLM is not installed: its rows are missing.")
    mismatches = sum(c.replay_mismatches for c in cells)
    section.extra.append(
        f"Retry time right: of a cell's user-visible errors, those whose retry time (the "
        f"sidecar's `retryAt`, an HTTP answer's `retry-after`) named a moment at which a "
        f"request would have been admitted on one of the user's keys, and not already "
        f"{WITHIN_S:g} s before, by the fake's buckets replayed from its log of decisions; "
        f"the others named none, or too early or too late a moment. The replay disagreed "
        f"with the fake's own verdict on {mismatches} decision(s)."
    )
    walls = {
        name: sum(sum(c.wall_s) for c in cells if c.contender == name)
        for name in dict.fromkeys(c.contender for c in cells)
    }
    section.extra.append(
        "Wall time of the runs (arrivals for D, then until the last answer or error), by "
        "contender: " + "; ".join(f"{name} {s:.0f} s" for name, s in walls.items()) + "."
    )
    section.numbers.update(
        runs=float(sum(len(c.fractions) for c in cells)),
        served=float(sum(c.served for c in cells)),
        arrivals=float(sum(c.arrivals for c in cells)),
        sidecar_served=float(sum(c.served for c in sidecar)),
        sidecar_errors=float(sum(c.errors for c in sidecar)),
        gateway_served=float(sum(c.served for c in sidecar if "gateway" in c.contender)),
        upstream_429=float(sum(c.limited for c in cells)),
        replay_mismatches=float(mismatches),
        plotted=float(drawn),
    )
    return section
