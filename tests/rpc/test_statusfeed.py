"""The status feed: a status is sent when what a status bar shows changed, or when forced."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sidecar.rotation.keypool import KeyPool
from sidecar.rotation.status import ProviderStatus
from sidecar.rpc.statusfeed import StatusFeed
from sidecar.store import Store


def make(home: Path) -> tuple[KeyPool, StatusFeed, list[ProviderStatus]]:
    keypool = KeyPool(Store(home), env={})
    sent: list[ProviderStatus] = []
    return keypool, StatusFeed(keypool, sent.append, refresh_every=3600.0), sent


def test_publish_sends_changes_only_unless_forced(home: Path, make_key: Callable[..., str]) -> None:
    keypool, feed, sent = make(home)
    keypool.add_key("anthropic", make_key())
    feed.publish("anthropic")
    feed.publish("anthropic")
    assert [s.text for s in sent] == ["🔑 ok"]
    feed.publish("anthropic", force=True)
    assert len(sent) == 2
    keypool.add_key("anthropic", make_key())
    status = feed.publish("anthropic")
    assert status.text == "🔑 1/2" and sent[-1] is status


def test_check_notices_a_change_made_elsewhere(home: Path, make_key: Callable[..., str]) -> None:
    _, feed, sent = make(home)
    feed.check()
    assert sent == []  # nothing changed, nothing to say
    # Another process (another KeyPool on the same home) adds a key.
    KeyPool(Store(home), env={}).add_key("openai", make_key())
    feed.check()
    assert [(s.provider, s.text) for s in sent] == [("openai", "🔑 ok")]
    feed.check()
    assert len(sent) == 1


def test_publish_all_covers_providers_that_lost_their_credentials(
    home: Path, make_key: Callable[..., str]
) -> None:
    keypool, feed, sent = make(home)
    keypool.add_key("groq", make_key())
    feed.publish_all()
    [cred] = keypool.status("groq").credentials
    keypool.remove("groq", fingerprint=cred.fingerprint, index=None)
    feed.publish_all()
    assert [s.text for s in sent if s.provider == "groq"][-1] == "🔑 no credentials"
