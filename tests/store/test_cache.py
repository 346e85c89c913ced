"""The parsed store is reused between reads, yet every write by anyone is seen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sidecar.rotation.keypool import KeyPool
from sidecar.store import Store

ADD = """
import sys
from pathlib import Path
from sidecar.rotation.keypool import KeyPool
from sidecar.store import Store
KeyPool(Store(Path(sys.argv[1])), env={}).add_key("anthropic", sys.argv[2])
"""


def secrets(keypool: KeyPool) -> set[str]:
    return {c.secret for c in keypool.credentials("anthropic")}


def test_a_write_by_another_process_is_seen_after_a_cached_read(
    home: Path, make_key: Callable[..., str]
) -> None:
    keypool = KeyPool(Store(home), env={})
    mine, theirs = make_key(), make_key()
    keypool.add_key("anthropic", mine)
    assert secrets(keypool) == {mine}  # read back from what this process wrote
    subprocess.run([sys.executable, "-c", ADD, str(home), theirs], check=True, timeout=60)
    assert secrets(keypool) == {mine, theirs}


def test_a_file_rewritten_in_place_is_seen(home: Path, make_key: Callable[..., str]) -> None:
    keypool = KeyPool(Store(home), env={})
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
    KeyPool(store, env={}).add_key("anthropic", make_key())
    first = store.read()
    first.pool_doc["pools"]["anthropic"].clear()  # a caller changing its snapshot
    assert len(store.read().pool("anthropic")) == 1


def test_files_are_written_compact_and_only_when_changed(
    home: Path, make_key: Callable[..., str]
) -> None:
    keypool = KeyPool(Store(home), env={})
    keypool.add_key("anthropic", make_key())
    pool = home / "pool.json"
    assert "\n " not in pool.read_text()
    inode = pool.stat().st_ino
    keypool.reset("anthropic")  # changes the rotation state only
    assert pool.stat().st_ino == inode


REJECT = """
import sys
from pathlib import Path
from sidecar.rotation.keypool import KeyPool
from sidecar.store import Store
pool = KeyPool(Store(Path(sys.argv[1])), env={})
(cred,) = [c for c in pool.credentials("anthropic") if c.secret == sys.argv[2]]
pool.reject(cred, "revoked")
"""


def test_the_choice_from_the_cache_is_acquires_and_never_misses_another_process(
    home: Path, make_key: Callable[..., str]
) -> None:
    """The gateway takes the credential from the parsed store, on its event loop, when
    no file changed: the same one acquire() gives, and none once another process
    wrote (then acquire() reads the files, in a thread)."""
    keypool = KeyPool(Store(home), env={})
    first, second = make_key(), make_key()
    keypool.add_key("anthropic", first)
    keypool.add_key("anthropic", second)
    time.sleep(0.2)  # past the cache's guard for a file written within its clock tick
    assert keypool.acquire("anthropic").credential.secret == first  # parses the files
    cached = keypool.acquire_cached("anthropic")
    assert cached is not None and cached.credential.secret == first
    subprocess.run([sys.executable, "-c", REJECT, str(home), first], check=True, timeout=60)
    assert keypool.acquire_cached("anthropic") is None  # the files changed: not from memory
    assert keypool.acquire("anthropic").credential.secret == second
