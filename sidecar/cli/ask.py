"""``llm-sidecar ask``: one answer streamed to the terminal through the rotation engine.

The answer goes to stdout as it arrives; thinking, tool calls, rotation
notices and the final usage go to stderr, so ``ask ... > answer.md`` keeps
just the answer.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from sidecar.catalog import get_provider
from sidecar.errors import InvalidParams
from sidecar.rotation.keypool import KeyPool

__all__ = ["run_ask"]


def _note(text: str) -> None:
    print(f"llm-sidecar: {text}", file=sys.stderr, flush=True)


def run_ask(
    keypool: KeyPool,
    *,
    provider: str,
    model: str | None,
    prompt: str,
    max_tokens: int,
    system: str | None,
) -> int:
    from sidecar.engine import Engine
    from sidecar.providers import StreamRequest

    model = model or get_provider(provider).default_model
    if not model:
        raise InvalidParams("model", f"{provider} has no default model: pass --model")
    request = StreamRequest(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=max_tokens,
        system=system,
    )
    last_status = {"text": keypool.status(provider).text}

    def on_status(name: str) -> None:
        status = keypool.status(name)
        if status.text != last_status["text"]:
            last_status["text"] = status.text
            _note(status.text + (f" ({status.message})" if status.message else ""))

    def send(deltas: list[dict[str, Any]]) -> None:
        for d in deltas:
            kind = d["kind"]
            if kind == "text":
                sys.stdout.write(d["text"])
                sys.stdout.flush()
            elif kind == "thinking":
                sys.stderr.write(d["text"])
            elif kind == "toolUseStart":
                sys.stderr.write(f"\n[tool call {d['name']}] ")
            elif kind == "toolInputDelta":
                sys.stderr.write(d["json"])
            elif kind == "restart":
                print(file=sys.stdout)
                _note("the answer above was cut off; replaying on another credential")

    async def go() -> Any:
        engine = Engine(keypool)
        try:
            return await engine.stream(provider, request, send=send, on_status=on_status)
        finally:
            await engine.aclose()

    outcome = asyncio.run(go())
    print(file=sys.stdout)
    usage, cost = outcome.message.usage, outcome.cost
    price = f"${cost.total:.6f}" if cost.known else "cost unknown for this model"
    _note(
        f"{outcome.message.stop_reason}; {usage.input_tokens} in, {usage.output_tokens} out, "
        f"{usage.cache_read_tokens} cache read, {usage.cache_write_tokens} cache write; {price}; "
        f"answered by {outcome.credential.fingerprint} after {outcome.attempts} attempt(s)"
    )
    return 0
