"""docs/benchmarks.md: the generated results between two markers, prose around them.

A run replaces only what lies between ``<!-- results:start -->`` and
``<!-- results:end -->``; the analysis written by hand around it stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.stats import Section

__all__ = ["render", "write"]

START, END = "<!-- results:start -->", "<!-- results:end -->"

_SKELETON = f"""# Benchmarks

{START}
{END}
"""


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return out


def render(
    sections: Sequence[Section],
    machine: Sequence[tuple[str, str]],
    *,
    command: str,
    load: tuple[str, str],
    minutes: float,
) -> str:
    lines = [
        f"Produced by `{command}` in {minutes:.1f} min. Load average (1, 5, 15 min) "
        f"before: {load[0]}; after: {load[1]}. Other processes share this machine's 2 "
        "cores, so every comparison alternates its contenders within one run and "
        "reports medians; read the ratios before the absolute figures.",
        "",
        *_table(["", ""], machine),
        "",
        "### Summary",
        "",
    ]
    goals = [(s.title, r) for s in sections for r in s.rows if r.goal]
    lines += _table(
        ["benchmark", "measure", "figure", "goal", "met"],
        [(title, r.measure, r.figure, r.goal, r.verdict) for title, r in goals],
    )
    for number, section in enumerate(sections, start=1):
        lines += ["", f"### {number}. {section.title}", "", section.method, ""]
        lines += _table(
            ["measure", "figure", "goal", "met"],
            [(r.measure, r.figure, r.goal, r.verdict) for r in section.rows],
        )
        for note in section.extra:
            lines += ["", note]
    return "\n".join(lines)


def write(path: Path, block: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else _SKELETON
    if START not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{head}{START}\n{block}\n{END}{tail}", encoding="utf-8")
