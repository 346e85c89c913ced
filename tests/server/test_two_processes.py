"""Two editor windows, two sidecar processes, one home: they agree within about a second."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sidecar.rotation.classify import Failure, FailureClass
from sidecar.rotation.keypool import KeyPool
from sidecar.store import Store
from tests.server.conftest import start_sidecar, stop_sidecar


async def test_changes_through_one_sidecar_reach_the_other(
    home: Path, make_key: Callable[..., str]
) -> None:
    keys = [make_key(), make_key(), make_key()]
    first = await start_sidecar(home, "visual-studio-code")
    second = await start_sidecar(home, "neovim")
    try:
        for key in keys:
            await first.request("sidecar/keyAdd", {"provider": "anthropic", "key": key})
        # The second window learns of the keys without being asked.
        await second.wait_status(lambda s: s["text"] == "🔑 1/3")

        # A rate limit seen by another process (here: this test, as the CLI would).
        keypool = KeyPool(Store(home), env={})
        current = keypool.acquire("anthropic").credential
        keypool.report_failure(
            current,
            Failure(FailureClass.RATE_LIMIT, 429, "rate_limit_error", "", time.time() + 600, False),
        )
        for client in (first, second):
            pushed = await client.wait_status(lambda s: s["text"] == "🔑 2/3 (rotated)")
            assert pushed["kind"] == "Warning" and pushed["rotated"] is True
        status = await second.request("sidecar/status", {"provider": "anthropic"})
        cooling = status["providers"][0]["credentials"][0]
        assert cooling["state"] == "coolingDown" and "cooldownUntil" in cooling

        # An eviction through the first window shows in the second.
        await first.request("sidecar/keyRemove", {"provider": "anthropic", "index": 3})
        await second.wait_status(lambda s: s["size"] == 2)
        listed = await second.request("sidecar/keyList", {"provider": "anthropic"})
        assert len([c for c in listed["credentials"] if c["state"] != "rejected"]) == 2

        # A reset through the second window clears the first's "(rotated)".
        await second.request("sidecar/keyReset", {"provider": "anthropic"})
        await first.wait_status(lambda s: s["text"] == "🔑 1/2" and not s["rotated"])
    finally:
        await stop_sidecar(first)
        await stop_sidecar(second)
