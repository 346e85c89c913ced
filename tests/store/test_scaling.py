"""Cost flat in pool size: an unchanged pool is not parsed, and an unchanged status is
not derived, again; what is kept still gives way to every change and to time.

Bound by counts, never by a clock (the figures are in bench/store.py).
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as s

from sidecar.credentials import Credential
from sidecar.rotation import keypool as keypool_module
from sidecar.rotation import placement
from sidecar.rotation.classify import parse_failure
from sidecar.rotation.keypool import KeyPool
from sidecar.store import Store, _data
from tests.store.test_cache import ADD

RATE_LIMITED = b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}'


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def counting(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    calls = [0]
    real = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def test_an_unchanged_status_is_derived_once_and_every_change_is_seen(
    home: Path, make_key: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    keypool = KeyPool(Store(home), env={})
    keypool.add_keys("anthropic", [make_key() for _ in range(3)])
    derived = counting(monkeypatch, keypool_module, "provider_status")
    for _ in range(5):
        assert keypool.status("anthropic").size == 3
    assert derived[0] == 1
    keypool.add_key("anthropic", make_key())  # this process's write
    assert keypool.status("anthropic").size == 4
    subprocess.run([sys.executable, "-c", ADD, str(home), make_key()], check=True, timeout=60)
    assert keypool.status("anthropic").size == 5  # another process's write
    assert derived[0] == 3


def test_a_kept_status_ends_when_the_cooldown_it_shows_does(
    home: Path, make_key: Callable[..., str]
) -> None:
    clock = Clock()
    keypool = KeyPool(Store(home), env={}, clock=clock)
    keypool.add_keys("anthropic", [make_key(), make_key()])
    cred = keypool.acquire("anthropic").credential
    failure = parse_failure(429, {"retry-after": "30"}, RATE_LIMITED, clock.now)
    keypool.report_failure(cred, failure)
    assert keypool.status("anthropic").credentials[0].state == "coolingDown"
    assert keypool.status("anthropic").credentials[0].state == "coolingDown"  # kept
    clock.now += 31  # no file changes: only time tells
    assert keypool.status("anthropic").credentials[0].state == "ok"


def test_an_unchanged_pool_is_not_parsed_again(
    home: Path, make_key: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(home)
    KeyPool(store, env={}).add_keys("anthropic", [make_key() for _ in range(50)])
    assert len(store.read().pool("anthropic")) == 50
    parsed = counting(monkeypatch, _data, "_pool_credential")
    for _ in range(3):
        assert len(store.read().pool("anthropic")) == 50
    assert parsed[0] == 0
    data = store.read()
    data.add_to_pool(  # a copy changed by its caller: its own pool, parsed anew
        Credential(id="", provider="anthropic", kind="api_key", source="pool", secret=make_key())
    )
    assert len(data.pool("anthropic")) == 51
    assert len(store.read().pool("anthropic")) == 50


def _rank_by_scanning(before: list[Credential], after: list[Credential]) -> dict[str, int]:
    """placement._rank as it was: every pair compared."""
    rank: dict[str, int] = {}
    for i, old in enumerate(before):
        for new in after:
            if new.id not in rank and (new.id == old.id or new.secret == old.secret):
                rank[new.id] = i
                break
    return rank


def _cred(id: str, secret: str) -> Credential:
    return Credential(id=id, provider="anthropic", kind="api_key", source="pool", secret=secret)


@given(
    s.lists(s.tuples(s.sampled_from("abcdef"), s.sampled_from("uvwxyz")), max_size=8),
    s.lists(s.tuples(s.sampled_from("abcdef"), s.sampled_from("uvwxyz")), max_size=8),
    s.randoms(),
)
def test_placement_ranks_as_a_scan_of_every_pair_would(
    before: list[tuple[str, str]], after: list[tuple[str, str]], rnd: random.Random
) -> None:
    # ``after`` as rotation order has it: each id and each secret once.
    ids: set[str] = set()
    secrets: set[str] = set()
    unique = []
    for id, secret in after:
        if id not in ids and secret not in secrets:
            ids.add(id)
            secrets.add(secret)
            unique.append(_cred(id, secret))
    rnd.shuffle(unique)
    old = [_cred(id, secret) for id, secret in before]
    assert placement._rank(old, unique) == _rank_by_scanning(old, unique)
