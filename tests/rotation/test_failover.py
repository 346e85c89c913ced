"""sidecar.rotation.failover: one request's attempt loop, which counts its own attempts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sidecar.credentials import Credential
from sidecar.rotation.failover import Failover
from sidecar.rotation.keypool import KeyPool
from sidecar.store import Store


async def _unused(cred: Credential) -> Credential:
    raise AssertionError("no OAuth login in this pool")


async def test_each_credential_handed_out_is_one_attempt(
    home: Path, make_key: Callable[..., str]
) -> None:
    """The loop's give-up bound counts attempts: a caller that forgot to count them (the
    engine, the gateway and the model listing each used to) would retry without end."""
    keypool = KeyPool(Store(home), env={})
    keypool.add_key("anthropic", make_key())
    failover = Failover(
        keypool,
        "anthropic",
        profile=None,
        refresher=_unused,
        ensure_fresh=_unused,
        max_cooldown_wait=0.0,
        on_status=lambda provider: None,
    )
    for n in (1, 2, 3):
        await failover.next_credential()
        assert failover.attempts == n
