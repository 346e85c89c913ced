"""``python -m bench``: run the benchmarks and write docs/benchmarks.md.

``--smoke`` runs tiny sizes (seconds) and writes nothing unless ``--out`` is given;
``--only startup,throughput`` picks benchmarks; ``--no-litellm`` leaves LiteLLM out.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench import (
    concurrency,
    failover,
    firstdelta,
    goodput,
    latency,
    machine,
    pinned,
    prototypes,
    report,
    startup,
    store,
    team,
    throughput,
)
from bench.sizes import FULL, SMOKE, Sizes
from bench.stats import Section

__all__ = ["BENCHMARKS", "main", "run_all"]

Benchmark = Callable[[Sizes, bool], Awaitable[Section]]

BENCHMARKS: dict[str, Benchmark] = {
    "startup": lambda sizes, lite: startup.run(sizes),
    "throughput": lambda sizes, lite: throughput.run(sizes, litellm=lite),
    "latency": lambda sizes, lite: latency.run(sizes),
    "failover": lambda sizes, lite: failover.run(sizes, litellm=lite),
    "concurrency": lambda sizes, lite: concurrency.run(sizes),
    "prototypes": lambda sizes, lite: prototypes.run(sizes),
    "goodput": lambda sizes, lite: goodput.run(sizes, litellm=lite),
    "store": lambda sizes, lite: store.run(sizes),
    "firstdelta": lambda sizes, lite: firstdelta.run(sizes),
    "pinned": lambda sizes, lite: pinned.run(sizes),
    "team": lambda sizes, lite: team.run(sizes),
}
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


async def run_all(
    names: list[str], sizes: Sizes, *, litellm: bool, log: Callable[[str], None]
) -> list[Section]:
    sections = []
    for name in names:
        started = time.monotonic()
        log(f"bench: {name} …")
        section = await BENCHMARKS[name](sizes, litellm)
        section.seconds = time.monotonic() - started
        log(f"bench: {name} done in {section.seconds:.0f} s")
        for row in section.rows:
            log(
                f"  {row.measure}: {row.figure}"
                + (f"  [goal {row.goal}: {row.verdict}]" if row.goal else "")
            )
        sections.append(section)
    return sections


def as_installed() -> None:
    """Spawned processes run from bytecode, as users' do: pip compiles a package when it
    installs it, but a shell with PYTHONDONTWRITEBYTECODE (CI sets it) would make every
    spawn of an editable checkout compile the sidecar's sources again (about 40-80 ms
    here), which the floors (pygls, ``python -c pass``) never pay."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False
    root = Path(__file__).resolve().parent.parent
    for package in ("sidecar", "bench"):
        compileall.compile_dir(root / package, quiet=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds each")
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(BENCHMARKS))
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM out")
    parser.add_argument("--out", type=Path, help=f"the report to write (default: {DOC})")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; known: {', '.join(BENCHMARKS)}")
    sizes = SMOKE if args.smoke else FULL
    out: Path | None = args.out or (None if args.smoke else DOC)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    as_installed()
    load_before = machine.load_average()
    sections = asyncio.run(run_all(names, sizes, litellm=not args.no_litellm, log=log))
    command = "python -m bench" + (" --smoke" if args.smoke else "")
    if args.only:
        command += f" --only {args.only}"
    # One block per marked part of the doc: "results", and each benchmark with its own.
    load = (load_before, machine.load_average())
    texts = report.blocks(sections, machine.describe(), command=command, load=load)
    for name, text in texts.items():
        if out is not None:
            report.write(out, text, name)
            log(f"bench: wrote {out} ({name})")
        else:
            print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
