"""Fallback to another provider and the daily budget, end to end: the real stdio server,
the fake provider in both flavours, the files written by the real CLI.

| situation | what the user sees |
|---|---|
| every key rate limited, a fallback listed | a `fallback` delta, its answer; the result names it |
| the same, no fallback listed | today's error (-32002), unchanged; nothing sent elsewhere |
| the daily budget spent | the next request fails (-32007) naming the budget and when it resets |
| the budget spent, a fallback listed | the fallback answers, announced |
"""

from __future__ import annotations

import calendar
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pygls.exceptions import JsonRpcException

from sidecar.cli import main
from sidecar.fake import FakeProvider, RateLimited, Reply, Text
from tests.conftest import answer_text
from tests.server.conftest import SidecarClient, start_sidecar, stop_sidecar
from tests.server.test_stream_e2e import ask, deltas_text, pool_of

OPENROUTER_MODEL = "anthropic/claude-sonnet-4.5"


@pytest_asyncio.fixture
async def editor(home: Path, fake: FakeProvider) -> AsyncIterator[SidecarClient]:
    """The real sidecar, Anthropic and OpenRouter both served by the fake."""
    client = await start_sidecar(
        home, env={"ANTHROPIC_BASE_URL": fake.url, "OPENROUTER_BASE_URL": fake.url + "/v1"}
    )
    yield client
    await stop_sidecar(client)


def cli(*argv: str) -> None:
    assert main(list(argv)) == 0


async def keys(
    editor: SidecarClient, fake: FakeProvider, make_key: Callable[..., str], anthropic: Any
) -> tuple[str, str]:
    """An anthropic key answering ``anthropic``, an openrouter key answering its name."""
    ant, router = make_key(), make_key("sk-or-v1-")
    fake.script(ant, [], default=anthropic)
    fake.script(router, [], default=Reply([Text("Answered by OpenRouter.")]))
    await pool_of(editor, [ant])
    await pool_of(editor, [router], provider="openrouter")
    return ant, router


async def test_every_key_rate_limited_falls_back_announced(
    editor: SidecarClient, fake: FakeProvider, make_key: Callable[..., str], home: Path
) -> None:
    cli(
        "fallback", "add", "--provider", "anthropic", "--model", "claude-sonnet-4-5*",
        "--to", f"openrouter:{OPENROUTER_MODEL}",
    )  # fmt: skip
    await keys(editor, fake, make_key, RateLimited(retry_after=600))

    result = await editor.request("sidecar/stream", ask(streamId="f"))

    assert result["provider"] == "openrouter" and result["model"] == OPENROUTER_MODEL
    assert answer_text(result) == "Answered by OpenRouter." == deltas_text(editor, "f")
    assert result["fallbackFrom"]["provider"] == "anthropic"
    assert result["fallbackFrom"]["model"] == "claude-sonnet-4-5"
    [announced] = [d for d in editor.deltas if d["kind"] == "fallback"]
    assert announced["provider"] == "openrouter" and announced["model"] == OPENROUTER_MODEL
    assert "rate limited" in announced["reason"]
    kinds = [d["kind"] for d in editor.deltas if d["streamId"] == "f"]
    assert kinds.index("fallback") < kinds.index("text"), "announced before the answer"
    # The fallback was asked for the model the user listed, in its own flavour.
    assert fake.requests[-1].path.endswith("/chat/completions")
    assert fake.requests[-1].body["model"] == OPENROUTER_MODEL
    # The editor's status for anthropic says where its requests went.
    await editor.wait_status(
        lambda s: s["provider"] == "anthropic" and "openrouter" in (s.get("message") or "")
    )


async def test_no_fallback_listed_keeps_todays_error(
    editor: SidecarClient, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    # A rule for another model does not apply: never to a target the user did not list.
    cli("fallback", "add", "-p", "anthropic", "--model", "claude-opus-*", "--to", "openrouter:x/y")
    await keys(editor, fake, make_key, RateLimited(retry_after=600))
    with pytest.raises(JsonRpcException) as err:
        await editor.request("sidecar/stream", ask())
    assert err.value.code == -32002
    assert err.value.message.startswith("1 anthropic credential tried (1 rate limited)")
    assert "fallback" not in err.value.message and "fallbacks" not in err.value.data
    assert not [d for d in editor.deltas if d["kind"] == "fallback"]
    assert all(r.path.endswith("/messages") for r in fake.requests), "openrouter never asked"


async def test_the_daily_budget_stops_the_next_request(
    editor: SidecarClient, fake: FakeProvider, make_key: Callable[..., str], home: Path
) -> None:
    cli("budget", "set", "--provider", "anthropic", "--daily", "0.0001")
    await keys(editor, fake, make_key, Reply([Text("An answer that costs money. " * 20)]))
    first = await editor.request("sidecar/stream", ask())
    assert first["provider"] == "anthropic" and first["cost"]["total"] > 0.0001
    asked = len(fake.requests)

    with pytest.raises(JsonRpcException) as err:
        await editor.request("sidecar/stream", ask())

    assert err.value.code == -32007
    assert "anthropic's daily budget of $0.00 is spent" in err.value.message
    assert "resets at local midnight" in err.value.message
    assert err.value.data["budget"] == 0.0001 and err.value.data["resetsAt"].endswith("Z")
    resets = calendar.timegm(time.strptime(err.value.data["resetsAt"], "%Y-%m-%dT%H:%M:%SZ"))
    assert time.localtime(resets)[3:6] == (0, 0, 0) and 0 < resets - time.time() <= 86400 + 3600
    assert len(fake.requests) == asked, "refused before the provider was asked"
    assert oct((home / "spend.json").stat().st_mode & 0o777) == "0o600"


async def test_a_spent_budget_falls_back_when_listed(
    editor: SidecarClient, fake: FakeProvider, make_key: Callable[..., str]
) -> None:
    cli("budget", "set", "--provider", "anthropic", "--daily", "0.0001")
    cli(
        "fallback",
        "add",
        "-p",
        "anthropic",
        "--model",
        "*",
        "--to",
        f"openrouter:{OPENROUTER_MODEL}",
    )
    await keys(editor, fake, make_key, Reply([Text("An answer that costs money. " * 20)]))
    await editor.request("sidecar/stream", ask())

    result = await editor.request("sidecar/stream", ask(streamId="b"))

    assert result["provider"] == "openrouter" and answer_text(result) == "Answered by OpenRouter."
    [announced] = [d for d in editor.deltas if d["kind"] == "fallback"]
    assert "daily budget" in announced["reason"]
