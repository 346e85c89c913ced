"""The key-management methods end to end: the real server over stdio, as each editor drives it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from pygls.exceptions import JsonRpcException

from tests.server.conftest import SidecarClient, server_env


async def test_status_on_an_empty_home_says_no_credentials(sidecar: SidecarClient) -> None:
    result = await sidecar.request("sidecar/status", {"provider": "anthropic"})
    [anthropic] = result["providers"]
    assert anthropic["text"] == "🔑 no credentials"
    assert anthropic["size"] == 0
    assert anthropic["credentials"] == []


async def test_key_add_list_remove_reset_each_push_a_status(
    sidecar: SidecarClient, make_key: Callable[..., str], home: Path
) -> None:
    first, second = make_key(), make_key()

    added = await sidecar.request("sidecar/keyAdd", {"provider": "anthropic", "key": first})
    assert added["added"] is True
    assert added["credential"]["fingerprint"].endswith(first[-4:])
    assert added["status"]["text"] == "🔑 ok"
    await sidecar.wait_status(lambda s: s["text"] == "🔑 ok")

    await sidecar.request("sidecar/keyAdd", {"provider": "anthropic", "key": second})
    await sidecar.wait_status(lambda s: s["text"] == "🔑 1/2" and s["size"] == 2)

    again = await sidecar.request("sidecar/keyAdd", {"provider": "anthropic", "key": second})
    assert again["added"] is False

    listed = await sidecar.request("sidecar/keyList", {"provider": "anthropic"})
    assert [c["fingerprint"][-4:] for c in listed["credentials"]] == [first[-4:], second[-4:]]
    assert all(c["state"] == "ok" and c["source"] == "pool" for c in listed["credentials"])

    removed = await sidecar.request("sidecar/keyRemove", {"provider": "anthropic", "index": 1})
    assert removed["removed"]["fingerprint"].endswith(first[-4:])
    assert removed["status"]["size"] == 1
    await sidecar.wait_status(lambda s: s["size"] == 1 and s["text"] == "🔑 ok")
    assert first not in (home / "pool.json").read_text()

    count = len(sidecar.statuses)
    reset = await sidecar.request("sidecar/keyReset", {"provider": "anthropic"})
    assert reset["index"] == 1
    await sidecar.wait_status(lambda s: s["provider"] == "anthropic", after=count)


async def test_key_remove_by_fingerprint(
    sidecar: SidecarClient, make_key: Callable[..., str]
) -> None:
    keys = [make_key(), make_key(), make_key()]
    for key in keys:
        await sidecar.request("sidecar/keyAdd", {"provider": "openai", "key": key})
    listed = await sidecar.request("sidecar/keyList", {"provider": "openai"})
    fp = listed["credentials"][1]["fingerprint"]
    removed = await sidecar.request("sidecar/keyRemove", {"provider": "openai", "fingerprint": fp})
    assert removed["removed"]["fingerprint"] == fp
    await sidecar.wait_status(lambda s: s["provider"] == "openai" and s["text"] == "🔑 1/2")


async def test_policy_is_read_and_set_from_the_editor_and_kept_in_the_home(
    sidecar: SidecarClient, make_key: Callable[..., str], home: Path
) -> None:
    await sidecar.request("sidecar/keyAdd", {"provider": "anthropic", "key": make_key()})
    got = await sidecar.request("sidecar/policy", {"provider": "anthropic"})
    assert (got["policy"], got["status"]["size"]) == ("sticky", 1)

    chosen = await sidecar.request("sidecar/policy", {"provider": "anthropic", "policy": "primary"})
    assert chosen["policy"] == "primary"
    # The same pool's policy for every process on the home: the CLI reads it back.
    cli = [sys.executable, "-m", "sidecar", "auth", "policy", "get", "-p", "anthropic"]
    shown = subprocess.run(cli, env=server_env(home), capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "anthropic: primary"
    assert (await sidecar.request("sidecar/policy", {"provider": "openai"}))["policy"] == "sticky"


async def test_key_add_without_key_and_no_login_is_a_clear_error(sidecar: SidecarClient) -> None:
    with pytest.raises(JsonRpcException) as err:
        await sidecar.request("sidecar/keyAdd", {"provider": "anthropic"})
    assert err.value.code == -32602
    assert "log in first" in err.value.message


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("sidecar/keyAdd", {"provider": 7, "key": "x"}, "provider"),
        ("sidecar/keyAdd", {"key": "abc"}, "provider"),
        ("sidecar/keyAdd", {"provider": "nope", "key": "abc"}, "provider"),
        ("sidecar/keyAdd", {"provider": "anthropic", "key": ""}, "key"),
        ("sidecar/keyAdd", {"provider": "anthropic", "key": ["a"]}, "key"),
        ("sidecar/keyRemove", {"provider": "anthropic", "index": "1"}, "index"),
        ("sidecar/keyRemove", {"provider": "anthropic", "index": 9}, "index"),
        ("sidecar/keyRemove", {"provider": "anthropic"}, "fingerprint"),
        ("sidecar/keyRemove", {"provider": "anthropic", "fingerprint": "sk-…zzzz"}, "fingerprint"),
        ("sidecar/status", {"provider": False}, "provider"),
        ("sidecar/status", [1, 2], "params"),
        ("sidecar/keyReset", {}, "provider"),
        ("sidecar/policy", {"provider": "anthropic", "policy": "round-robin"}, "policy"),
        ("sidecar/policy", {"provider": "anthropic", "policy": 1}, "policy"),
    ],
)
async def test_bad_params_name_the_field_and_the_server_keeps_serving(
    sidecar: SidecarClient, method: str, params: object, field: str
) -> None:
    with pytest.raises(JsonRpcException) as err:
        await sidecar.request(method, params)
    assert err.value.code == -32602
    assert err.value.data == {"field": field}
    # Still serving.
    result = await sidecar.request("sidecar/status", {})
    assert "providers" in result


async def test_unknown_method_is_method_not_found(sidecar: SidecarClient) -> None:
    with pytest.raises(JsonRpcException) as err:
        await sidecar.request("sidecar/noSuchThing", {})
    assert err.value.code == -32601
    assert "providers" in await sidecar.request("sidecar/status", {})


async def test_statuses_are_pushed_after_initialize(
    home: Path, make_key: Callable[..., str]
) -> None:
    from tests.server.conftest import start_sidecar, stop_sidecar

    key = make_key("sk-proj-")
    client = await start_sidecar(home, env={"OPENAI_API_KEY": key})
    try:
        status = await client.wait_status(lambda s: s["provider"] == "openai")
        assert status == {
            "provider": "openai",
            "kind": "Normal",
            "text": "🔑 ok",
            "index": 1,
            "size": 1,
            "rotated": False,
        }
    finally:
        await stop_sidecar(client)
