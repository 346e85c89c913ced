"""Medians, percentiles and the result rows every benchmark reports."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Row", "Section", "median", "percentile"]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100), nearest rank: a value that was measured."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Row:
    """One line of a results table: a measure, its figure, the goal and whether it is met."""

    measure: str
    figure: str
    goal: str = ""
    met: bool | None = None

    @property
    def verdict(self) -> str:
        return {True: "yes", False: "**no**", None: ""}[self.met]


@dataclass
class Section:
    """One benchmark's results: tables of rows, plus notes in Markdown."""

    title: str
    method: str
    rows: list[Row] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    numbers: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0  # how long the benchmark took, set by ``run_all``
    block: str = "results"
    """The marked block of docs/benchmarks.md it is written to: a benchmark that takes
    minutes (goodput) has its own, so that re-running it alone replaces only its figures."""

    def add(self, measure: str, figure: str, goal: str = "", met: bool | None = None) -> None:
        self.rows.append(Row(measure, figure, goal, met))
