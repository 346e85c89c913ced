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
            for group in (names[:3], names[3:6], names[6:8], names[8:])
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
        "Time to first delta",
        "CPU per delta on one core",
        "Team state",
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
    # The gateway ran as a contender too: tools speaking HTTP to it were served.
    assert goodput["gateway_served"] > 0
    # Each llm-sidecar contender (one per pool policy) reports every goal of the issue,
    # the gateway included.
    measures = [r.measure for r in by_title["Goodput under rate limits"].rows]
    for who in ("llm-sidecar sticky, K", "llm-sidecar primary, K", "llm-sidecar gateway sticky, K"):
        for goal in ("errors; served requests waiting", "served within D", "retry time", "429s"):
            assert any(m.startswith(who) and goal in m for m in measures), (who, goal)
    assert goodput["plotted"] == (importlib.util.find_spec("matplotlib") is not None)

    doc = tmp_path / "benchmarks.md"
    goodput_start, goodput_end = report.markers("goodput")
    team_start, team_end = report.markers("team")
    doc.write_text(
        f"# Benchmarks\n\nprose\n\n{report.START}\nSTALE-RESULTS\n{report.END}\n"
        f"between\n\n{goodput_start}\nSTALE-GOODPUT\n{goodput_end}\n"
        f"\n{team_start}\nSTALE-TEAM\n{team_end}\nend\n"
    )
    texts = report.blocks(sections, machine.describe(), command="test", load=("0", "0"))
    for name, text in texts.items():
        report.write(doc, text, name)
    text = doc.read_text()
    assert "prose" in text and "between" in text and text.rstrip().endswith("end")
    assert "STALE-RESULTS" not in text and "STALE-GOODPUT" not in text
    assert "STALE-TEAM" not in text and "### 1. Team state" in text  # a block of its own
    assert "### 6. Prototyped changes" in text
    # Goodput, minutes long, has a block of its own: run alone, it replaces only that.
    results, goodput = text.split(goodput_start)
    assert "Goodput" not in results and "### 1. Goodput under rate limits" in goodput
    report.write(doc, "FRESH-GOODPUT", "goodput")
    assert doc.read_text().split(goodput_start)[0] == results
    assert "FRESH-GOODPUT" in doc.read_text()
