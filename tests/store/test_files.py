"""The store's files: permissions, atomicity, corrupt files set aside."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.errors import StoreError
from sidecar.rotation.keypool import KeyPool
from sidecar.store import Store


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o002])
def test_home_is_0700_and_files_0600_whatever_the_umask(
    tmp_path: Path, umask: int, make_key: Callable[..., str]
) -> None:
    old = os.umask(umask)
    try:
        keypool = KeyPool(Store(tmp_path / "home"), env={})
        keypool.add_key("anthropic", make_key())
        keypool.reset("anthropic")
    finally:
        os.umask(old)
    home = tmp_path / "home"
    assert mode(home) == 0o700
    files = list(home.iterdir())
    assert {p.name for p in files} >= {"pool.json", "state.json", ".lock"}
    for path in files:
        assert mode(path) == 0o600, path


def test_a_corrupt_file_is_set_aside_and_the_others_keep_working(
    home: Path, make_key: Callable[..., str]
) -> None:
    keypool = KeyPool(Store(home), env={})
    key = make_key()
    keypool.add_key("anthropic", key)
    (home / "state.json").write_text("{ this is not json")

    status = keypool.status("anthropic")
    assert status.size == 1  # the pool still loads
    aside = keypool.store.set_aside_files()
    assert [p.name.split(".corrupt-")[0] for p in aside] == ["state.json"]
    assert aside[0].read_text() == "{ this is not json"  # kept for the user, not overwritten

    keypool.reset("anthropic")  # writing state works again
    assert (
        json.loads((home / "state.json").read_text())["providers"]["anthropic"]["current"] is None
    )


def test_a_file_caught_mid_write_by_another_tool_is_read_not_set_aside(
    home: Path, make_key: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An editor or script that truncates then writes: read in between, the file is
    empty. It must not be taken for corrupt and moved away with the user's keys."""
    import sidecar.store as store_module

    keypool = KeyPool(Store(home), env={})
    key = make_key()
    keypool.add_key("anthropic", key)
    whole = (home / "pool.json").read_text()
    (home / "pool.json").write_text("")  # the other tool has truncated it...
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # ...and finishes writing while the store waits
        waits.append(seconds)
        (home / "pool.json").write_text(whole)

    monkeypatch.setattr(store_module.time, "sleep", sleep)
    keypool.reset("anthropic")  # a transaction: reads every file under the lock
    assert keypool.store.set_aside_files() == []
    assert [c.secret for c in keypool.pool("anthropic")] == [key]
    assert len(waits) == 1


def test_a_file_that_stays_unparsable_is_set_aside_after_a_few_reads(
    home: Path, make_key: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sidecar.store as store_module

    keypool = KeyPool(Store(home), env={})
    keypool.add_key("anthropic", make_key())
    (home / "state.json").write_text("{ cut off")
    waits: list[float] = []
    monkeypatch.setattr(store_module.time, "sleep", waits.append)
    keypool.reset("anthropic")
    assert [p.name.split(".corrupt-")[0] for p in keypool.store.set_aside_files()] == ["state.json"]
    assert len(waits) == store_module.SETTLE_TRIES  # bounded: then it is corrupt


def test_a_file_holding_a_non_object_is_corrupt_too(home: Path) -> None:
    store = Store(home)
    store.ensure_home()
    (home / "pool.json").write_text("[1, 2]")
    data = store.read()
    assert any("pool.json" in p and "set aside" in p for p in data.problems)
    assert data.pool("anthropic") == []


def test_an_unreadable_entry_is_skipped_not_dropped(
    home: Path, make_key: Callable[..., str]
) -> None:
    store = Store(home)
    keypool = KeyPool(store, env={})
    keypool.add_key("anthropic", make_key())
    doc = json.loads((home / "pool.json").read_text())
    doc["pools"]["anthropic"].append({"id": "anthropic:pool-bad", "type": "mystery"})
    (home / "pool.json").write_text(json.dumps(doc))

    assert keypool.status("anthropic").size == 1
    keypool.add_key("anthropic", make_key())  # a later write keeps the odd entry
    entries = json.loads((home / "pool.json").read_text())["pools"]["anthropic"]
    assert any(e["id"] == "anthropic:pool-bad" for e in entries)
    assert len(entries) == 3


def test_writes_leave_no_temporary_files(home: Path, make_key: Callable[..., str]) -> None:
    keypool = KeyPool(Store(home), env={})
    for _ in range(5):
        keypool.add_key("openai", make_key("sk-proj-"))
    assert not [p for p in home.iterdir() if p.name.endswith(".tmp")]


def test_reading_never_creates_the_home(tmp_path: Path) -> None:
    keypool = KeyPool(Store(tmp_path / "absent"), env={})
    assert keypool.status_all() == []
    assert not (tmp_path / "absent").exists()


def test_a_file_that_cannot_be_read_is_reported_and_never_replaced(
    home: Path, make_key: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Permission denied is not corruption: nothing is moved, and no write replaces it.

    (Root reads a file of mode 000, so the error is injected where the file is read.)
    """
    from sidecar.store import _jsonfile

    keypool = KeyPool(Store(home), env={})
    keypool.add_key("anthropic", make_key())
    content = (home / "pool.json").read_bytes()
    real = _jsonfile.read_capped_stat

    def denied(path: Path) -> tuple[bytes | None, os.stat_result | None]:
        if path.name == "pool.json":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(_jsonfile, "read_capped_stat", denied)
    # A new process's store: this one keeps what it wrote (the file's mode did not
    # change, so nothing tells it the file became unreadable).
    keypool = KeyPool(Store(home), env={})
    assert any("cannot read" in p and "pool.json" in p for p in keypool.store.read().problems)
    with pytest.raises(StoreError, match="nothing was saved"):
        keypool.add_key("anthropic", make_key())
    keypool.reset("anthropic")  # the other files still take writes
    assert (home / "pool.json").read_bytes() == content
    assert keypool.store.set_aside_files() == []
