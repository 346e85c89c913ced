"""A sidecar whose base URL points at the gateway keeps its keys.

The shell that ran `gateway env` is guarded (sources.py drops those URLs), but a user
may set `ANTHROPIC_BASE_URL` to the gateway by hand, or in an editor's settings: the
gateway then refuses the sidecar's real keys with a 401, which must not read as the
provider rejecting them (that evicts every key from the pool file).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.errors import SidecarError
from sidecar.providers import StreamRequest
from sidecar.rotation.classify import GATEWAY_REFUSAL_ADVICE
from tests.conftest import engine_for
from tests.gateway.conftest import Gateway


def test_the_gateways_own_401_is_not_the_keys_fault(
    tmp_path: Path, gateway: Gateway, make_key: Callable[..., str]
) -> None:
    keys = [make_key(), make_key()]
    environ = {"ANTHROPIC_BASE_URL": f"{gateway.url}/anthropic"}
    engine = engine_for(tmp_path / "editor-home", environ, max_cooldown_wait=0.0)
    keypool = engine.keypool
    for key in keys:
        keypool.add_key("anthropic", key)
    request = StreamRequest(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}], max_tokens=16
    )

    async def ask() -> None:
        try:
            await engine.stream("anthropic", request)
        finally:
            await engine.aclose()

    with pytest.raises(SidecarError) as raised:
        asyncio.run(ask())
    assert "points at the gateway" in raised.value.message
    assert GATEWAY_REFUSAL_ADVICE in raised.value.message
    # Both keys still pooled, neither rejected nor resting.
    status = keypool.status("anthropic")
    assert [c.state for c in status.credentials] == ["ok", "ok"]
    assert [c.secret for c in keypool.pool("anthropic")] == keys
