"""``llm-sidecar ask``: one answer streamed to the terminal through the rotation engine.

The answer goes to stdout as it arrives; thinking, tool calls, rotation
notices and the final usage go to stderr, so ``ask ... > answer.md`` keeps
just the answer.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any

from sidecar.catalog import get_provider
from sidecar.errors import InvalidParams
from sidecar.rotation.keypool import KeyPool

if TYPE_CHECKING:
    from sidecar.settings import Settings

__all__ = ["run_ask"]


def _note(text: str) -> None:
    print(f"llm-sidecar: {text}", file=sys.stderr, flush=True)


def run_ask(
    keypool: KeyPool,
    settings: Settings,
    *,
    provider: str,
    model: str | None,
    prompt: str,
    max_tokens: int,
    system: str | None,
) -> int:
    from sidecar.engine import Engine
    from sidecar.events import Fallback, Restart, StreamEvent
    from sidecar.providers import (
        StreamRequest,
        TextDelta,
        ThinkingDelta,
        ToolInputDelta,
        ToolUseStart,
    )

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

    class Terminal:
        """The stream's events as terminal text: the answer on stdout, the rest on stderr."""

        def event(self, event: StreamEvent) -> None:
            match event:
                case TextDelta(text=text):
                    sys.stdout.write(text)
                    sys.stdout.flush()
                case ThinkingDelta(text=text):
                    sys.stderr.write(text)
                case ToolUseStart(name=name):
                    sys.stderr.write(f"\n[tool call {name}] ")
                case ToolInputDelta(json=fragment):
                    sys.stderr.write(fragment)
                case Restart():
                    print(file=sys.stdout)
                    _note("the answer above was cut off; replaying on another credential")
                case Fallback(provider=to, model=to_model, reason=reason):
                    print(file=sys.stdout)
                    _note(f"falling back to {to} {to_model}: {reason}")

        async def ready(self) -> None:
            pass

    async def go() -> Any:
        from sidecar.rotation.sharing import start_sharing

        # With a team's state: its cooldowns first (a key a teammate saw limited is not
        # tried), and this answer's outcome published before exiting. Both bounded: a
        # server that does not answer costs a couple of seconds at most, never the answer.
        team = start_sharing(keypool, settings.team, lambda link: None)  # logs "offline"
        if team is not None:
            await team.settled()
        engine = Engine(keypool, settings)
        try:
            return await engine.stream(provider, request, Terminal(), on_status=on_status)
        finally:
            await engine.aclose()
            keypool.save_usage()  # the counts held in memory: this process ends here
            if team is not None:
                await team.aclose()

    outcome = asyncio.run(go())
    print(file=sys.stdout)
    usage, cost = outcome.message.usage, outcome.cost
    price = f"${cost.total:.6f}" if cost.known else "cost unknown for this model"
    _note(
        f"{outcome.message.stop_reason}; {usage.input_tokens} in, {usage.output_tokens} out, "
        f"{usage.cache_read_tokens} cache read, {usage.cache_write_tokens} cache write; {price}; "
        f"answered by {outcome.provider} {outcome.model} ({outcome.credential.fingerprint})"
        f" after {outcome.attempts} attempt(s)"
    )
    return 0
