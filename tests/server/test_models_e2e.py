"""sidecar/models end to end: the provider's own list, failover, cache and fallback.

| situation | what the editor gets |
|---|---|
| a key, the provider lists models | the provider's ids, ``source: "provider"`` |
| the first key is rate limited | the list, from the next key (same rotation as streams) |
| asked again | the same list, without another request upstream |
| no credentials | the known models (default first), ``source: "known"`` |
| every key refused | the known models, and the provider's complaint in ``errors`` |
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pygls.exceptions import JsonRpcException

from sidecar.fake import FakeProvider, InvalidKey, RateLimited, Reply
from sidecar.fake._models import ANTHROPIC_MODELS, OPENAI_MODELS
from tests.server.conftest import SidecarClient


def listings(fake: FakeProvider) -> list[str]:
    """The steps that answered the model-list requests the fake received."""
    return [r.step for r in fake.requests if r.method == "GET" and r.path.endswith("/models")]


async def test_anthropic_lists_its_own_models_once(
    editor: SidecarClient, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    key = make_key()
    fake.script(key, [], default=Reply())
    await editor.request("sidecar/keyAdd", {"provider": "anthropic", "key": key})

    first = await editor.request("sidecar/models", {"provider": "anthropic"})
    again = await editor.request("sidecar/models", {"provider": "anthropic"})

    expected = [
        {"provider": "anthropic", "id": m[0], "source": "provider"} for m in ANTHROPIC_MODELS
    ]
    assert first == {"models": expected, "errors": []} == again
    assert listings(fake) == ["models"]  # the second answer came from the cache
    assert fake.requests[0].headers["anthropic-version"] == "2023-06-01"


async def test_openai_compatible_list(
    editor: SidecarClient, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    key = make_key("sk-proj-")
    fake.script(key, [], default=Reply())
    await editor.request("sidecar/keyAdd", {"provider": "openai", "key": key})

    result = await editor.request("sidecar/models", {"provider": "openai"})

    assert [m["id"] for m in result["models"]] == [m[0] for m in OPENAI_MODELS]
    assert {m["source"] for m in result["models"]} == {"provider"}


async def test_a_rate_limited_key_rotates_to_the_next(
    editor: SidecarClient, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    busy, good = make_key(), make_key()
    fake.script(busy, [RateLimited(retry_after=120)])
    fake.script(good, [], default=Reply())
    for key in (busy, good):
        await editor.request("sidecar/keyAdd", {"provider": "anthropic", "key": key})
    before = len(editor.statuses)

    result = await editor.request("sidecar/models", {"provider": "anthropic"})

    assert [m["source"] for m in result["models"]] == ["provider"] * len(ANTHROPIC_MODELS)
    assert listings(fake) == ["error:rate_limit_error", "models"]
    # The editor sees the rotation as after a stream, and the busy key cools down.
    assert "🔑 2/2 (rotated)" in [s["text"] for s in editor.statuses[before:]]
    status = await editor.request("sidecar/status", {"provider": "anthropic"})
    assert status["providers"][0]["credentials"][0]["state"] == "coolingDown"


async def test_without_credentials_the_known_models(
    editor: SidecarClient, fake: FakeProvider
) -> None:
    result = await editor.request("sidecar/models", {"provider": "anthropic"})

    ids = [m["id"] for m in result["models"]]
    assert ids[0] == "claude-sonnet-4-5"  # the catalog's default model comes first
    assert "claude-opus-4-1" in ids and "claude-opus-4" not in ids  # a family is not a model
    assert {m["source"] for m in result["models"]} == {"known"}
    assert result["errors"] == [] and listings(fake) == []


async def test_all_providers_in_one_request(editor: SidecarClient) -> None:
    result = await editor.request("sidecar/models", {})

    providers = {m["provider"] for m in result["models"]}
    assert {"anthropic", "openai"} <= providers


async def test_every_key_refused_falls_back_with_the_reason(
    editor: SidecarClient, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    key = make_key()
    fake.script(key, [InvalidKey()])
    await editor.request("sidecar/keyAdd", {"provider": "anthropic", "key": key})

    result = await editor.request("sidecar/models", {"provider": "anthropic"})

    assert {m["source"] for m in result["models"]} == {"known"}
    [error] = result["errors"]
    assert error["provider"] == "anthropic" and "401" in error["message"]


async def test_unknown_provider_is_invalid_params(editor: SidecarClient) -> None:
    with pytest.raises(JsonRpcException) as info:
        await editor.request("sidecar/models", {"provider": "nope"})
    assert info.value.code == -32602
