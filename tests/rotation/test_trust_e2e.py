"""Rotation users can trust (issue 15), end to end: the engine against the fake provider,
which sends the providers' rate-limit headers on successes and errors and counts limits
per model. What a user would notice: which key answered, whether a 429 ever reached the
provider, what the status says.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.engine import Engine
from sidecar.errors import AllRateLimited, SidecarError
from sidecar.fake import (
    Error,
    ExtraUsageRequired,
    FakeProvider,
    Overloaded,
    RateLimited,
    RateLimits,
    Reply,
)
from sidecar.fake import fingerprint as fp
from sidecar.providers import StreamRequest
from tests.conftest import engine_for


def ask(model: str = "claude-sonnet-4-5") -> StreamRequest:
    return StreamRequest(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=16)


class Clock:
    """The pool's clock, movable: a cooldown ends without a test waiting for it."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_engine(
    home: Path, fake: FakeProvider, provider: str, keys: list[str], clock: Clock
) -> Engine:
    env = {"ANTHROPIC_BASE_URL": fake.url, "OPENAI_BASE_URL": fake.url + "/v1"}
    engine = engine_for(home, env, clock, max_cooldown_wait=0.0)
    for key in keys:
        engine.keypool.add_key(provider, key)
    return engine


async def answer(engine: Engine, model: str = "claude-sonnet-4-5", provider: str = "anthropic"):  # type: ignore[no-untyped-def]
    return await engine.stream(provider, ask(model))


def statuses(fake: FakeProvider) -> list[int | None]:
    return [r.status for r in fake.requests]


@pytest.fixture
def two_keys(make_key: Callable[..., str]) -> tuple[str, str]:
    return make_key(), make_key()


def first_key_fails(
    home: Path, keys: tuple[str, str], clock: Clock, first: Error | Reply
) -> tuple[Engine, list[int | None]]:
    """One request, the first key answering ``first``: it must end on the second key.
    The engine (for its pool) and the statuses the fake sent."""
    k1, k2 = keys
    with FakeProvider() as fake:
        fake.script(k1, [first], default=Reply())
        fake.script(k2, [], default=Reply())
        engine = make_engine(home, fake, "anthropic", [k1, k2], clock)

        async def run() -> str:
            try:
                return (await answer(engine)).credential.secret
            finally:
                await engine.aclose()

        assert asyncio.run(run()) == k2
        return engine, statuses(fake)


# -- headroom: a spent key is skipped before the 429 -------------------------------


def test_a_key_at_remaining_zero_is_skipped_without_a_429_reaching_the_provider(
    home: Path, two_keys: tuple[str, str], clock: Clock
) -> None:
    k1, k2 = two_keys
    with FakeProvider(limits={k1: RateLimits(requests=1, period=60)}) as fake:
        fake.script(k1, [], default=Reply())
        fake.script(k2, [], default=Reply())
        engine = make_engine(home, fake, "anthropic", [k1, k2], clock)

        async def run() -> list[str]:
            try:
                return [(await answer(engine)).credential.secret for _ in range(3)]
            finally:
                await engine.aclose()

        answered_by = asyncio.run(run())
        # The first answer said "requests remaining 0": the next two go to key 2 at once.
        assert answered_by == [k1, k2, k2]
        assert 429 not in statuses(fake)
        assert [r.key for r in fake.requests] == [fp(k1), fp(k2), fp(k2)]
        status = engine.keypool.status("anthropic")
        windows = status.credentials[0].windows
        assert [(w.name, w.limit, w.remaining, w.model) for w in windows] == [
            ("requests", 1, 0, "sonnet")
        ]


def test_the_status_warns_when_the_key_in_use_is_below_ten_percent(
    home: Path, make_key: Callable[..., str], clock: Clock
) -> None:
    key = make_key()
    with FakeProvider(limits={key: RateLimits(requests=20, period=60, refill="window")}) as fake:
        fake.script(key, [], default=Reply())
        engine = make_engine(home, fake, "anthropic", [key], clock)

        async def run() -> None:
            try:
                for _ in range(19):
                    await answer(engine)
            finally:
                await engine.aclose()

        asyncio.run(run())
        status = engine.keypool.status("anthropic")
        assert status.text == "🔑 ok · 5% left"
        assert status.kind.value == "Warning"


def test_a_subscription_at_its_unified_limit_is_skipped_for_every_model(
    home: Path, make_key: Callable[..., str], clock: Clock
) -> None:
    login, other = make_key("sk-ant-oat01-"), make_key()
    limits = {login: RateLimits(requests=1, period=3600, unified=True)}
    with FakeProvider(limits=limits) as fake:
        fake.script(login, [], default=Reply())
        fake.script(other, [], default=Reply())
        engine = make_engine(home, fake, "anthropic", [login, other], clock)

        async def run() -> list[str]:
            try:
                first = await answer(engine, "claude-sonnet-4-5")
                second = await answer(engine, "claude-haiku-4-5")  # another model: same account
                return [first.credential.secret, second.credential.secret]
            finally:
                await engine.aclose()

        assert asyncio.run(run()) == [login, other]
        assert 429 not in statuses(fake)
        windows = {w.name: w for w in engine.keypool.status("anthropic").credentials[0].windows}
        assert set(windows) == {"unified", "unified-5h"}  # the overall status, the 5 h window
        five = windows["unified-5h"]
        assert (five.account, five.utilization, five.status) == (True, 1.0, "rejected")
        assert windows["unified"].status == "rejected"


# -- cooldowns per model ---------------------------------------------------------


def test_a_429_on_one_model_leaves_the_same_key_serving_another(
    home: Path, make_key: Callable[..., str], clock: Clock
) -> None:
    key = make_key()
    with FakeProvider() as fake:
        fake.script(key, [RateLimited(retry_after=30)], default=Reply())
        engine = make_engine(home, fake, "anthropic", [key], clock)

        async def run() -> str:
            try:
                with pytest.raises(AllRateLimited):
                    await answer(engine, "claude-sonnet-4-5")
                with pytest.raises(AllRateLimited):  # sonnet rests: not sent at all
                    await answer(engine, "claude-sonnet-4-5-20250929")
                return (await answer(engine, "claude-haiku-4-5")).message.text
            finally:
                await engine.aclose()

        assert asyncio.run(run())
        assert statuses(fake) == [429, 200]
        assert [r.model for r in fake.requests] == ["claude-sonnet-4-5", "claude-haiku-4-5"]
        (cred,) = engine.keypool.status("anthropic").credentials
        assert cred.state == "ok"
        assert [(m.model, m.reason) for m in cred.model_cooldowns] == [("sonnet", "rateLimit")]


def test_per_model_buckets_of_the_fake_keep_other_models_apart(
    home: Path, make_key: Callable[..., str], clock: Clock
) -> None:
    key = make_key()
    with FakeProvider(limits={key: RateLimits(requests=1, period=60, per_model=True)}) as fake:
        fake.script(key, [], default=Reply())
        engine = make_engine(home, fake, "anthropic", [key], clock)

        async def run() -> None:
            try:
                await answer(engine, "claude-sonnet-4-5")
                await answer(engine, "claude-opus-4-1")
                with pytest.raises(AllRateLimited):  # sonnet's window said 0: not sent
                    await answer(engine, "claude-sonnet-4-5")
            finally:
                await engine.aclose()

        asyncio.run(run())
        assert statuses(fake) == [200, 200]


def test_a_repeat_429_during_a_cooldown_extends_it_never_shortens_it(
    home: Path, make_key: Callable[..., str], clock: Clock
) -> None:
    key = make_key()
    with FakeProvider() as fake:
        # Two requests in flight on the same key: the answers come back 429 with 60 s,
        # then 429 with 5 s. The later, shorter one must not cut the rest short.
        fake.script(
            key,
            [
                Error("rate_limit_error", retry_after=60, stall=0.05),
                Error("rate_limit_error", retry_after=5, stall=0.3),
            ],
            default=Reply(),
        )
        engine = make_engine(home, fake, "anthropic", [key], clock)

        async def run() -> list[BaseException | object]:
            try:
                return await asyncio.gather(answer(engine), answer(engine), return_exceptions=True)
            finally:
                await engine.aclose()

        results = asyncio.run(run())
        assert all(isinstance(r, SidecarError) for r in results)
        state = engine.keypool.state("anthropic")
        (cooldown,) = state.model_cooldowns[engine.keypool.pool("anthropic")[0].state_key].values()
        assert cooldown.failures == 2
        assert cooldown.until >= time.time() + 50  # the 60 s stands


def test_without_a_reset_time_the_backoff_climbs_a_ladder_and_a_success_resets_it(
    home: Path, make_key: Callable[..., str], clock: Clock
) -> None:
    key = make_key()
    bare = Error("rate_limit_error")  # no retry-after, no reset headers
    with FakeProvider() as fake:
        fake.script(key, [bare, bare, Reply(), bare], default=Reply())
        engine = make_engine(home, fake, "anthropic", [key], clock)
        keypool = engine.keypool
        slot = keypool.pool("anthropic")[0].state_key

        def rest() -> float:
            return keypool.state("anthropic").model_cooldowns[slot]["sonnet"].until - clock()

        async def run() -> list[float]:
            rests = []
            try:
                for _ in range(2):
                    with pytest.raises(AllRateLimited):
                        await answer(engine)
                    rests.append(rest())
                    clock.offset += rests[-1] + 1  # past the cooldown
                await answer(engine)  # a success: the ladder starts over
                with pytest.raises(AllRateLimited):
                    await answer(engine)
                rests.append(rest())
            finally:
                await engine.aclose()
            return rests

        first, second, after_success = asyncio.run(run())
        assert 25 < first <= 30 and 55 < second <= 60 and 25 < after_success <= 30


def test_a_529_rotates_for_this_request_but_cools_for_seconds(
    home: Path, two_keys: tuple[str, str], clock: Clock
) -> None:
    engine, _ = first_key_fails(home, two_keys, clock, Overloaded())
    (rest,) = engine.keypool.status("anthropic").credentials[0].model_cooldowns
    assert rest.reason == "overloaded"
    assert rest.until - clock() <= 5  # seconds, not minutes


# -- billing apart -----------------------------------------------------------------


def test_insufficient_quota_shows_out_of_credit_and_the_key_is_never_evicted(
    home: Path, make_key: Callable[..., str], clock: Clock
) -> None:
    k1, k2 = make_key("sk-proj-"), make_key("sk-proj-")
    with FakeProvider() as fake:
        fake.script(k1, [Error("insufficient_quota")], default=Reply())
        fake.script(k2, [], default=Reply())
        engine = make_engine(home, fake, "openai", [k1, k2], clock)

        async def run() -> list[str]:
            try:
                return [
                    (await answer(engine, "gpt-4o-mini", "openai")).credential.secret,
                    (await answer(engine, "gpt-4o", "openai")).credential.secret,  # any model
                ]
            finally:
                await engine.aclose()

        assert asyncio.run(run()) == [k2, k2]
        status = engine.keypool.status("openai")
        broke = status.credentials[0]
        assert broke.state == "outOfCredit"
        assert broke.message is not None
        assert "out of credit (You exceeded your current quota" in broke.message
        assert "llm-sidecar key reset --provider openai" in broke.message
        assert [c.secret for c in engine.keypool.pool("openai")] == [k1, k2]  # kept
        # Hours, not seconds: the billing ladder, whatever windows the 429 carried.
        assert broke.cooldown_until is not None and broke.cooldown_until - clock() >= 3000


def test_the_extra_usage_refusal_is_out_of_credit_not_a_scope_refusal(
    home: Path, make_key: Callable[..., str], clock: Clock
) -> None:
    login = make_key("sk-ant-oat01-")
    with FakeProvider() as fake:
        fake.script(login, [ExtraUsageRequired()], default=Reply())
        engine = make_engine(home, fake, "anthropic", [login], clock)

        async def run() -> None:
            try:
                with pytest.raises(SidecarError):
                    await answer(engine)
            finally:
                await engine.aclose()

        asyncio.run(run())
        status = engine.keypool.status("anthropic")
        assert status.text == "🔑 out of credit"
        assert status.credentials[0].state == "outOfCredit"
        assert "extra usage" in (status.credentials[0].message or "")
        assert [c.secret for c in engine.keypool.pool("anthropic")] == [login]


# -- which key when ----------------------------------------------------------------


@pytest.mark.parametrize(("policy", "after"), [("sticky", 1), ("primary", 0)])
def test_sticky_stays_on_the_key_that_answers_primary_goes_back_to_the_first(
    home: Path, two_keys: tuple[str, str], clock: Clock, policy: str, after: int
) -> None:
    k1, k2 = two_keys
    with FakeProvider() as fake:
        fake.script(k1, [RateLimited(retry_after=30)], default=Reply())
        fake.script(k2, [], default=Reply())
        engine = make_engine(home, fake, "anthropic", [k1, k2], clock)
        engine.keypool.set_policy("anthropic", policy)

        async def run() -> list[str]:
            try:
                first = (await answer(engine)).credential.secret
                second = (await answer(engine)).credential.secret  # k1 still rests
                clock.offset += 60  # k1's rest is over
                third = (await answer(engine)).credential.secret
                return [first, second, third]
            finally:
                await engine.aclose()

        assert asyncio.run(run()) == [k2, k2, (k1, k2)[after]]
        assert engine.keypool.policy("anthropic") == policy


def test_a_rate_limit_error_event_inside_a_200_stream_is_a_rate_limit(
    home: Path, two_keys: tuple[str, str], clock: Clock
) -> None:
    broken = Reply(error_after=1, error_type="rate_limit_error", error_message="Rate limited")
    engine, seen = first_key_fails(home, two_keys, clock, broken)
    assert seen == [200, 200]
    (rest,) = engine.keypool.status("anthropic").credentials[0].model_cooldowns
    assert (rest.model, rest.reason) == ("sonnet", "rateLimit")


def test_requests_waiting_on_an_exhausted_pool_wake_spread_out() -> None:
    from sidecar.rotation.failover import _jitter

    waits = [_jitter(5.0) for _ in range(200)]
    assert all(0.01 <= w <= 0.5 for w in waits)
    assert len({round(w, 3) for w in waits}) > 50  # not one instant for all
    assert all(0.01 <= _jitter(w) <= 1.0 for w in (0.0, 0.1, 100.0))
