"""``python -m bench.gateway`` at tiny sizes: it runs and every answer is exact.

Never a timing assertion: the figures belong in the benchmark's report (docs/gateway.md).
"""

from __future__ import annotations

import math
from pathlib import Path

from bench import machine, report
from bench.gateway import SMOKE, have_litellm_proxy, run


async def test_the_gateway_benchmark_runs_and_every_answer_is_exact(tmp_path: Path) -> None:
    section = await run(SMOKE, litellm=have_litellm_proxy())
    assert section.numbers["lost_streams"] == 0
    assert all(math.isfinite(v) for v in section.numbers.values()), section.numbers
    for api in ("anthropic", "openai"):
        assert f"{api}:llm-sidecar gateway:throughput_ratio" in section.numbers
        assert (f"{api}:LiteLLM proxy:throughput_ratio" in section.numbers) == (
            have_litellm_proxy()
        )
    doc = tmp_path / "gateway.md"
    doc.write_text(f"# The local gateway\n\nprose\n\n{report.START}\nOLD\n{report.END}\n")
    report.write(
        doc, report.render([section], machine.describe(), command="t", load=("0", "0"), minutes=0.1)
    )
    text = doc.read_text()
    assert "OLD" not in text and "added time to first byte" in text and "prose" in text
