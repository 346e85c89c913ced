"""The parsed store is reused between reads, yet every write by anyone is seen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sidecar.rotation.keypool import KeyPool
from sidecar.store import Store

ADD = """
import sys
from pathlib import Path
from sidecar.rotation.keypool import KeyPool
from sidecar.store import Store
KeyPool(Store(Path(sys.argv[1])), environ={}).add_key("anthropic", sys.argv[2])
"""


def secrets(keypool: KeyPool) -> set[str]:
    return {c.secret for c in keypool.credentials("anthropic")}


def test_a_write_by_another_process_is_seen_after_a_cached_read(
    home: Path, make_key: Callable[..., str]
) -> None:
    keypool = KeyPool(Store(home), environ={})
    mine, theirs = make_key(), make_key()
    keypool.add_key("anthropic", mine)
    assert secrets(keypool) == {mine}  # read back from what this process wrote
    subprocess.run([sys.executable, "-c", ADD, str(home), theirs], check=True, timeout=60)
    assert secrets(keypool) == {mine, theirs}


def test_a_file_rewritten_in_place_is_seen(home: Path, make_key: Callable[..., str]) -> None:
    keypool = KeyPool(Store(home), environ={})
    keypool.add_key("anthropic", make_key())
    keypool.credentials("anthropic")
    pool = home / "pool.json"
    doc = json.loads(pool.read_text())
    doc["pools"]["anthropic"] = []
    with open(pool, "r+") as f:  # same inode: only the stamp tells
        f.write(json.dumps(doc))
        f.truncate()
    os.utime(pool, ns=(1, 1))  # even an old mtime: the size and ctime changed
    assert secrets(keypool) == set()


def test_reads_hand_out_copies(home: Path, make_key: Callable[..., str]) -> None:
    store = Store(home)
    KeyPool(store, environ={}).add_key("anthropic", make_key())
    first = store.read()
    first.pool_doc["pools"]["anthropic"].clear()  # a caller changing its snapshot
    assert len(store.read().pool("anthropic")) == 1


def test_files_are_written_compact_and_only_when_changed(
    home: Path, make_key: Callable[..., str]
) -> None:
    keypool = KeyPool(Store(home), environ={})
    keypool.add_key("anthropic", make_key())
    pool = home / "pool.json"
    assert "\n " not in pool.read_text()
    inode = pool.stat().st_ino
    keypool.reset("anthropic")  # changes the rotation state only
    assert pool.stat().st_ino == inode
