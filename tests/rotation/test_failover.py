"""sidecar.rotation.failover: one request's attempt loop, which counts its own attempts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.credentials import Credential
from sidecar.errors import AllRateLimited, SidecarError
from sidecar.providers import UpstreamFailure
from sidecar.rotation.classify import Failure, FailureClass
from sidecar.rotation.failover import Failover
from sidecar.rotation.keypool import KeyPool
from sidecar.store import Store


async def _unused(cred: Credential) -> Credential:
    raise AssertionError("no OAuth login in this pool")


def _failover(keypool: KeyPool) -> Failover:
    """One request on the pool's anthropic keys, which never waits for a cooldown."""
    return Failover(
        keypool,
        "anthropic",
        profile=None,
        refresher=_unused,
        ensure_fresh=_unused,
        max_cooldown_wait=0.0,
        on_status=lambda provider: None,
    )


async def test_each_credential_handed_out_is_one_attempt(
    home: Path, make_key: Callable[..., str]
) -> None:
    """The loop's give-up bound counts attempts: a caller that forgot to count them (the
    engine, the gateway and the model listing each used to) would retry without end."""
    keypool = KeyPool(Store(home), env={})
    keypool.add_key("anthropic", make_key())
    failover = _failover(keypool)
    for n in (1, 2, 3):
        await failover.next_credential()
        assert failover.attempts == n


async def test_a_request_out_of_attempts_on_rate_limits_says_when_to_retry(
    home: Path, make_key: Callable[..., str]
) -> None:
    """Keys that keep coming back and refusing use up the request's attempts; the user
    then hears -32002 with the moment the pool has a key again, not a bare 429."""
    now = [1_800_000_000.0]
    keypool = KeyPool(Store(home), env={}, clock=lambda: now[0])
    keypool.add_key("anthropic", make_key())
    failover = _failover(keypool)
    with pytest.raises(SidecarError) as err:
        while True:
            cred = await failover.next_credential()
            refused = Failure(
                FailureClass.RATE_LIMIT,
                429,
                "rate_limit_error",
                "slow down",
                retry_at=now[0] + 1.5,
                billing=False,
            )
            await failover.after_failure(cred, UpstreamFailure(refused, mid_stream=False))
            now[0] += 2  # its cooldown is over before the next attempt
    assert failover.attempts == failover.max_attempts
    assert isinstance(err.value, AllRateLimited) and err.value.code == -32002
    # The last cooldown ends 1.5 s after the last refusal: the next whole second.
    assert err.value.data["retryAt"] == "2027-01-15T08:00:12Z"
    assert err.value.data["status"] == 429
