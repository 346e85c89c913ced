"""A sidecar hears of another process's store write when it happens, not at the next poll."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.rotation.keypool import KeyPool
from sidecar.store import Store
from tests.store.test_cache import ADD

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify")

NEVER = 3600.0  # a poll or idle interval the test would not outlast


async def test_a_write_by_another_process_wakes_the_waiter(
    home: Path, make_key: Callable[..., str]
) -> None:
    store = Store(home)
    KeyPool(store, env={}).add_key("anthropic", make_key())
    changes = store.changes()
    try:
        await changes.wait(NEVER, NEVER)  # sets the watch up, and returns at once
        waiting = asyncio.ensure_future(changes.wait(NEVER, NEVER))
        await asyncio.sleep(0)  # the watch is set up on the first wait
        assert changes.notified
        writer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", ADD, str(home), make_key()
        )
        assert await writer.wait() == 0
        await asyncio.wait_for(waiting, 10)  # only against a hang: it returns on the write
    finally:
        changes.close()


async def test_files_other_than_the_stores_do_not_wake_it(home: Path) -> None:
    store = Store(home)
    store.ensure_home()
    changes = store.changes()
    try:
        await changes.wait(NEVER, NEVER)  # sets the watch up, and returns at once
        waiting = asyncio.ensure_future(changes.wait(NEVER, NEVER))
        await asyncio.sleep(0)
        (home / "notes.txt").write_text("unrelated")
        (home / "pool.json.corrupt-x").write_text("{}")
        for _ in range(20):  # the loop has had every chance to read the events
            await asyncio.sleep(0.01)
        assert not waiting.done()
        waiting.cancel()
    finally:
        changes.close()


async def test_the_watch_is_closed_off_the_event_loop(
    tmp_path: Path, make_key: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The kernel makes closing a watching inotify descriptor wait (RCU): the first write
    # that creates the home re-arms the watch, mid-stream, and must not stall the loop.
    from inotify_simple import INotify

    closed_in: list[threading.Thread] = []
    done = threading.Event()
    real_close = INotify.close

    def close(self: INotify) -> None:
        closed_in.append(threading.current_thread())
        real_close(self)
        done.set()

    monkeypatch.setattr(INotify, "close", close)
    home = tmp_path / "home"
    changes = Store(home).changes()
    await changes.wait(NEVER, NEVER)  # watching the parent for the home to appear
    waiting = asyncio.ensure_future(changes.wait(NEVER, NEVER))
    await asyncio.sleep(0)
    KeyPool(Store(home), env={}).add_key("anthropic", make_key())
    await asyncio.wait_for(waiting, 10)  # the home appeared: the parent's watch is closed
    assert await asyncio.to_thread(done.wait, 10)
    assert closed_in and threading.main_thread() not in closed_in
    assert not changes.notified


async def test_without_a_home_or_its_parent_it_polls(tmp_path: Path) -> None:
    changes = Store(tmp_path / "absent" / "home").changes()
    await changes.wait(0.0, NEVER)  # returns after the poll interval: nothing to watch
    assert not changes.notified


async def test_a_home_created_later_is_watched_once_it_exists(
    tmp_path: Path, make_key: Callable[..., str]
) -> None:
    home = tmp_path / "home"
    changes = Store(home).changes()
    try:
        await changes.wait(NEVER, NEVER)  # sets the watch up, and returns at once
        waiting = asyncio.ensure_future(changes.wait(NEVER, NEVER))
        await asyncio.sleep(0)
        assert changes.notified  # watching the parent for the home to appear
        KeyPool(Store(home), env={}).add_key("anthropic", make_key())
        await asyncio.wait_for(waiting, 10)  # only against a hang
        await changes.wait(NEVER, NEVER)  # sets the watch up, and returns at once
        waiting = asyncio.ensure_future(changes.wait(NEVER, NEVER))
        await asyncio.sleep(0)
        assert changes.notified
        writer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", ADD, str(home), make_key()
        )
        assert await writer.wait() == 0
        await asyncio.wait_for(waiting, 10)
    finally:
        changes.close()
