"""The engine's fallback to another provider: in order, announced, never unlisted.

Against the local provider stand-in serving Anthropic and OpenRouter (the OpenAI
flavour); the sink records the typed events the engine hands a face.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sidecar.engine import Engine
from sidecar.errors import AllRateLimited, UpstreamError
from sidecar.events import Fallback, Finished, StreamEvent, StreamOutcome
from sidecar.fake import Error, FakeProvider, InvalidKey, RateLimited, Reply, Text
from sidecar.providers import StreamRequest, TextDelta
from sidecar.rotation.fallback import Target
from sidecar.rotation.routing import Routing
from tests.conftest import engine_for

REQUEST = StreamRequest(
    model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}], max_tokens=64
)


class Recorder:
    def __init__(self) -> None:
        self.events: list[StreamEvent] = []

    def event(self, event: StreamEvent) -> None:
        self.events.append(event)

    async def ready(self) -> None:
        pass

    def shown(self) -> str:
        """What an editor shows: text appended, cleared by a fallback."""
        text = ""
        for e in self.events:
            if isinstance(e, Fallback):
                text = ""
            elif isinstance(e, TextDelta):
                text += e.text
        return text


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


def engine_with(home: Path, fake: FakeProvider, keys: dict[str, str]) -> Engine:
    environ = {
        "ANTHROPIC_BASE_URL": fake.url,
        "OPENROUTER_BASE_URL": fake.url + "/v1",
        "OPENAI_BASE_URL": fake.url + "/v1",
    }
    engine = engine_for(home, environ, max_cooldown_wait=0.0)
    for key, provider in keys.items():
        engine.keypool.add_key(provider, key)
    return engine


async def run(engine: Engine, sink: Recorder, close: bool = True, **kw: str) -> StreamOutcome:
    try:
        return await engine.stream("anthropic", REQUEST, sink, **kw)  # type: ignore[arg-type]
    finally:
        if close:
            await engine.aclose()


async def test_a_cut_answer_is_voided_and_the_second_fallback_answers(
    home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    ant, router, openai = make_key(), make_key("sk-or-v1-"), make_key("sk-proj-")
    # Anthropic's answer is cut by a rate limit after words went out; the first fallback's
    # only key is invalid; the second answers.
    fake.script(
        ant,
        [Reply([Text("Words that will be void")], chunk=4, error_after=5)],
        default=RateLimited(retry_after=600),
    )
    fake.script(router, [], default=InvalidKey())
    fake.script(openai, [], default=Reply([Text("From the second fallback.")]))
    engine = engine_with(home, fake, {ant: "anthropic", router: "openrouter", openai: "openai"})
    Routing(engine.keypool.store).add_fallback(
        "anthropic", "claude-*", [Target("openrouter", "a/b"), Target("openai", "gpt-5")]
    )
    sink = Recorder()

    outcome = await run(engine, sink)

    fallbacks = [e for e in sink.events if isinstance(e, Fallback)]
    assert [(f.provider, f.model) for f in fallbacks] == [
        ("openrouter", "a/b"),
        ("openai", "gpt-5"),
    ]
    assert "rate limited" in fallbacks[0].reason and "rejected" in fallbacks[1].reason
    assert sink.shown() == "From the second fallback."
    assert isinstance(sink.events[-1], Finished) and sink.events[-1].outcome is outcome
    assert outcome.provider == "openai" and outcome.model == "gpt-5"
    assert outcome.fallback == fallbacks[-1]
    assert (fallbacks[-1].from_provider, fallbacks[-1].from_model) == (
        "anthropic",
        "claude-sonnet-4-5",
    )


async def test_every_fallback_failing_keeps_the_providers_own_error_naming_them(
    home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    ant, router = make_key(), make_key("sk-or-v1-")
    fake.script(ant, [], default=RateLimited(retry_after=600))
    fake.script(router, [], default=Error("not_found_error", "no such model", status=404))
    engine = engine_with(home, fake, {ant: "anthropic", router: "openrouter"})
    Routing(engine.keypool.store).add_fallback("anthropic", "*", [Target("openrouter", "a/b")])
    with pytest.raises(AllRateLimited) as err:
        await run(engine, Recorder())
    assert err.value.code == -32002 and "retryAt" in (err.value.data or {})
    assert "; fallback openrouter a/b: openrouter answered 404: no such model" in err.value.message
    assert err.value.data["fallbacks"] == [  # type: ignore[index]
        {
            "provider": "openrouter",
            "model": "a/b",
            "code": -32004,
            "message": "openrouter answered 404: no such model",
        }
    ]


async def test_a_bad_request_or_a_pinned_profile_never_falls_back(
    home: Path, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    ant, router = make_key(), make_key("sk-or-v1-")
    fake.script(ant, [Error("invalid_request_error", "max_tokens: too large", status=400)])
    fake.script(router, [], default=Reply([Text("never")]))
    engine = engine_with(home, fake, {ant: "anthropic", router: "openrouter"})
    Routing(engine.keypool.store).add_fallback("anthropic", "*", [Target("openrouter", "a/b")])
    sink = Recorder()
    with pytest.raises(UpstreamError):
        await run(engine, sink, close=False)  # the request's own fault: the same anywhere
    fake.script(ant, [], default=RateLimited(retry_after=600))
    pinned = engine.keypool.pool("anthropic")[0].id
    with pytest.raises(UpstreamError, match="429"):
        await run(engine, sink, profile=pinned)  # the user asked for that credential
    assert not [e for e in sink.events if isinstance(e, Fallback)]
    assert all(r.flavour == "anthropic" for r in fake.requests)
