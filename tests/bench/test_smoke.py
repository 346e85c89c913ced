"""Every benchmark at tiny sizes: it runs, produces numbers and loses no delta.

Never a timing assertion: timings belong in ``python -m bench``'s report, not in
tests. LiteLLM's parts are left out by the benchmarks when it is not installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
from pathlib import Path

from bench import machine, report
from bench.__main__ import BENCHMARKS, run_all
from bench.sizes import SMOKE


async def test_every_benchmark_runs_and_loses_no_delta(tmp_path: Path) -> None:
    # Three groups side by side, to stay well under 30 s: the figures of a smoke run are
    # meaningless anyway, only that every benchmark runs and checks its deltas.
    names = list(BENCHMARKS)
    halves = await asyncio.gather(
        *(
            run_all(group, SMOKE, litellm=True, log=lambda line: None)
            for group in (names[:3], names[3:6], names[6:])
        )
    )
    sections = [section for half in halves for section in half]

    assert [s.title for s in sections] == [
        "Start-up",
        "Streaming throughput",
        "Added latency per delta",
        "Failover",
        "Concurrency",
        "Prototyped changes",
        "Goodput under rate limits",
        "Store",
    ]
    for section in sections:
        assert section.rows, section.title
        assert all(row.figure for row in section.rows), section.title
        assert all(math.isfinite(v) for v in section.numbers.values()), section.numbers
        # Correctness, not timing: no stream lost, repeated or reordered a delta.
        assert section.numbers.get("lost_streams", 0) == 0, section.title
    by_title = {s.title: s for s in sections}
    assert by_title["Concurrency"].numbers["bad_streams"] == 0
    assert by_title["Concurrency"].numbers["rate_limited"] >= 1  # failover was exercised
    assert by_title["Start-up"].numbers["rss_mb"] > 0
    goodput = by_title["Goodput under rate limits"].numbers
    # Every arrival ended, served or as an error, and the buckets did refuse some.
    assert goodput["sidecar_served"] > 0 and goodput["upstream_429"] >= 1
    assert goodput["plotted"] == (importlib.util.find_spec("matplotlib") is not None)

    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\nprose\n\n{report.START}\nSTALE-RESULTS\n{report.END}\nend\n")
    block = report.render(
        sections, machine.describe(), command="test", load=("0", "0"), minutes=0.1
    )
    report.write(doc, block)
    text = doc.read_text()
    assert "prose" in text and text.rstrip().endswith("end") and "STALE-RESULTS" not in text
    assert "### 6. Prototyped changes" in text
