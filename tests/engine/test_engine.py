"""The engine's side of a stream: typed events to the sink it is given, in order.

Against the local provider stand-in; the sink records what the engine handed it,
so these tests see the engine's contract without any wire format in between.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sidecar.engine import Engine
from sidecar.events import Finished, Restart, StreamEvent
from sidecar.fake import FakeProvider, InvalidKey, RateLimited, Reply, Text, ToolUse, Usage
from sidecar.providers import (
    StreamRequest,
    TextDelta,
    ToolInputDelta,
    ToolUseStart,
    ToolUseStop,
    UsageDelta,
)
from sidecar.rotation.status import StatusKind
from tests.conftest import engine_for

REQUEST = StreamRequest(
    model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}], max_tokens=64
)


class Recorder:
    """A sink that keeps every event and counts the engine's waits on it."""

    def __init__(self) -> None:
        self.events: list[StreamEvent] = []
        self.waits = 0

    def event(self, event: StreamEvent) -> None:
        self.events.append(event)

    async def ready(self) -> None:
        self.waits += 1


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


def make_engine(home: Path, fake: FakeProvider, keys: list[str]) -> Engine:
    engine = engine_for(home, {"ANTHROPIC_BASE_URL": fake.url}, max_cooldown_wait=0.0)
    for key in keys:
        engine.keypool.add_key("anthropic", key)
    return engine


async def test_deltas_then_finished_with_the_outcome(
    home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    key = make_key()
    fake.script(
        key,
        [
            Reply(
                [Text("hello world"), ToolUse("toolu_1", "read", {"path": "a"})],
                stop_reason="tool_use",
                usage=Usage(input=3, output=5),
                chunk=4,
            )
        ],
    )
    engine = make_engine(home, fake, [key])
    sink = Recorder()
    try:
        outcome = await engine.stream("anthropic", REQUEST, sink)
    finally:
        await engine.aclose()
    *deltas, last = sink.events
    assert last == Finished(outcome)
    assert "".join(e.text for e in deltas if isinstance(e, TextDelta)) == "hello world"
    kinds = [type(e) for e in deltas]
    assert ToolUseStart in kinds and ToolInputDelta in kinds and ToolUseStop in kinds
    assert any(isinstance(e, UsageDelta) for e in deltas)
    assert not any(isinstance(e, Restart) for e in deltas)
    # Every delta is followed by a wait on the sink: a face that is behind pauses here.
    assert sink.waits == len(deltas)
    assert outcome.message.text == "hello world" and outcome.attempts == 1


async def test_a_failure_before_any_delta_replays_without_a_restart(
    home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    limited, healthy = make_key(), make_key()
    fake.script(limited, [RateLimited(retry_after=30)])
    fake.script(healthy, [Reply([Text("ok")])])
    engine = make_engine(home, fake, [limited, healthy])
    sink = Recorder()
    try:
        outcome = await engine.stream("anthropic", REQUEST, sink)
    finally:
        await engine.aclose()
    assert outcome.attempts == 2 and outcome.credential.secret == healthy
    assert not any(isinstance(e, Restart) for e in sink.events)


async def test_a_failure_after_deltas_is_announced_by_a_restart(
    home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    first, second = make_key(), make_key()
    # The first key streams part of an answer, then an "overloaded" error event ends
    # it; the second key answers in full.
    fake.script(first, [Reply([Text("partial answer")], error_after=5, chunk=4)])
    fake.script(second, [Reply([Text("whole answer")])])
    engine = make_engine(home, fake, [first, second])
    sink = Recorder()
    try:
        outcome = await engine.stream("anthropic", REQUEST, sink)
    finally:
        await engine.aclose()
    restarts = [e for e in sink.events if isinstance(e, Restart)]
    assert len(restarts) == 1 and restarts[0].attempt == outcome.attempts
    after = sink.events[sink.events.index(restarts[0]) + 1 :]
    assert "".join(e.text for e in after if isinstance(e, TextDelta)) == "whole answer"
    assert isinstance(sink.events[-1], Finished)


async def test_without_a_sink_the_outcome_alone(
    home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    key = make_key()
    fake.script(key, [InvalidKey()])
    other = make_key()
    fake.script(other, [Reply([Text("fine")])])
    engine = make_engine(home, fake, [key, other])
    try:
        outcome = await engine.stream("anthropic", REQUEST)
    finally:
        await engine.aclose()
    assert outcome.message.text == "fine"


async def test_the_settings_given_are_the_ones_used_not_the_process_environment(
    home: Path, fake: FakeProvider, make_key: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A face reads the settings once and hands them down: nothing below it reads the
    process environment again (here it names another key, a closed port, a bad value)."""
    given, other = make_key(), make_key()
    monkeypatch.setenv("ANTHROPIC_API_KEY", other)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("LLM_SIDECAR_TOTAL_TIMEOUT", "soon")
    fake.script(given, [Reply([Text("from the settings")])])
    environ = {
        "ANTHROPIC_API_KEY": given,
        "ANTHROPIC_BASE_URL": fake.url,
        "LLM_SIDECAR_TOTAL_TIMEOUT": "45",
    }
    engine = engine_for(home, environ, max_cooldown_wait=0.0)
    try:
        outcome = await engine.stream("anthropic", REQUEST)
    finally:
        await engine.aclose()
    assert outcome.message.text == "from the settings"
    assert outcome.credential.secret == given
    assert engine.timeouts.total == 45.0
    assert engine.keypool.status("anthropic").kind is not StatusKind.ERROR  # no problem seen
