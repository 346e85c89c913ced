"""The gateway and the daily budget: counted, then refused with 402; never a fallback."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from sidecar.fake import FakeProvider, Reply, Text
from sidecar.rotation.fallback import Target
from sidecar.rotation.routing import Routing
from tests.gateway.conftest import Gateway

BODY = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hi"}],
}


def test_a_spent_budget_is_refused_with_402_and_never_falls_back(
    gateway: Gateway, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    key = make_key()
    fake.script(key, [], default=Reply([Text("Costly words. " * 40)]))
    gateway.add_keys("anthropic", [key])
    routing = Routing(gateway.keypool.store)
    routing.set_budget("anthropic", 0.0001)
    # Listed for the editors; the gateway must still not send the client's body elsewhere.
    routing.add_fallback("anthropic", "*", [Target("openai", "gpt-5")])
    url = f"{gateway.url}/anthropic/v1/messages"
    with httpx.Client(timeout=10, headers=gateway.headers()) as client:
        assert client.post(url, json=BODY).status_code == 200
        deadline = time.monotonic() + 5
        while routing.spent_today("anthropic") < 0.0001 and time.monotonic() < deadline:
            time.sleep(0.02)  # counted off the gateway's event loop
        refused = client.post(url, json=BODY)
    assert refused.status_code == 402
    error = refused.json()["error"]
    assert error["type"] == "billing_error"
    assert "anthropic's daily budget of $0.00 is spent" in error["message"]
    assert "resets at local midnight" in error["message"]
    assert len(fake.requests) == 1, "neither anthropic nor a fallback was asked"
