"""docs/benchmarks.md: the generated results between two markers, prose around them.

A run replaces only what lies between ``<!-- results:start -->`` and
``<!-- results:end -->``; the analysis written by hand around it stays. A section with a
block of its own (``Section.block``, e.g. ``goodput``) goes between
``<!-- goodput:start -->`` and ``<!-- goodput:end -->`` instead, so that running that
benchmark alone neither drops the other results nor leaves its own stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.stats import Section

__all__ = ["blocks", "markers", "render", "write"]


def markers(block: str) -> tuple[str, str]:
    return f"<!-- {block}:start -->", f"<!-- {block}:end -->"


START, END = markers("results")

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


def write(path: Path, block: str, name: str = "results") -> None:
    """Put ``block`` between the ``name`` markers of ``path`` (added at the end if absent)."""
    start, end = markers(name)
    text = path.read_text(encoding="utf-8") if path.exists() else _SKELETON
    if start not in text or end not in text:
        text = text.rstrip("\n") + f"\n\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{head}{start}\n{block}\n{end}{tail}", encoding="utf-8")


def blocks(
    sections: Sequence[Section],
    machine: Sequence[tuple[str, str]],
    *,
    command: str,
    load: tuple[str, str],
) -> dict[str, str]:
    """The rendered text of each marked block the sections go to, by block name."""
    out = {}
    for name in dict.fromkeys(s.block for s in sections):
        mine = [s for s in sections if s.block == name]
        minutes = sum(s.seconds for s in mine) / 60
        out[name] = render(mine, machine, command=command, load=load, minutes=minutes)
    return out
