"""Usage counts are batched; rotation state is written at once."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from sidecar.rotation.classify import Failure, FailureClass
from sidecar.rotation.keypool import KeyPool
from sidecar.store import Store


def state(home: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((home / "state.json").read_text())["providers"]["anthropic"]


def test_plain_successes_are_counted_in_memory_then_saved(
    home: Path, make_key: Callable[..., str]
) -> None:
    now = [1000.0]
    keypool = KeyPool(Store(home), env={}, clock=lambda: now[0])
    cred, _ = keypool.add_key("anthropic", make_key())
    keypool.report_success(cred)  # first success: makes it current, written at once
    for _ in range(3):
        keypool.report_success(cred)
    assert state(home)["usage"][cred.state_key]["requests"] == 1
    now[0] += 10
    keypool.report_success(cred)  # the save interval passed
    assert state(home)["usage"][cred.state_key]["requests"] == 5


def test_a_success_after_a_rotation_is_written_at_once_with_pending_counts(
    home: Path, make_key: Callable[..., str]
) -> None:
    keypool = KeyPool(Store(home), env={})
    first, _ = keypool.add_key("anthropic", make_key())
    second, _ = keypool.add_key("anthropic", make_key())
    keypool.report_success(first)
    keypool.report_success(first)  # pending
    keypool.report_failure(first, Failure(FailureClass.RATE_LIMIT, 429, None, "", None, False))
    assert state(home)["rotated"] is True
    keypool.report_success(second)
    st = state(home)
    assert st["rotated"] is False and st["current"] == second.state_key
    assert st["usage"][first.state_key]["requests"] == 2
    keypool.save_usage()  # nothing pending: no change
    assert state(home) == st


def test_success_writes_says_when_report_success_will_write(
    home: Path, make_key: Callable[..., str]
) -> None:
    """The engine runs report_success in a thread exactly when it writes the store."""
    now = [1000.0]
    keypool = KeyPool(Store(home), env={}, clock=lambda: now[0])
    cred, _ = keypool.add_key("anthropic", make_key())

    def writes() -> bool:
        said = keypool.success_writes(cred)
        path = home / "state.json"
        before = path.stat().st_ino if path.exists() else 0
        keypool.report_success(cred)
        assert said == (path.stat().st_ino != before)  # every write renames a new file in
        return said

    assert writes()  # the first success makes it current
    assert [writes() for _ in range(3)] == [False] * 3  # counted in memory
    now[0] += 10
    assert writes()  # the counts are due
