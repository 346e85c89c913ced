"""Processes killed with SIGKILL while they write the store: nothing torn, nothing lost.

Two worker processes (crash_worker.py) loop over add / remove / cooldown on one home,
each logging every operation it begins and completes to its own fsynced file. The test
kills them at random points of their work (after a random count of completed
operations, never after a measured time), over and over, then checks that

* the store loads with no problem and no file set aside as corrupt,
* every completed operation is on disk (a key added is there, a key removed is gone, a
  cooldown is recorded); only the one operation in flight at the kill may go either way,
* the lock a killed worker held is free at once (flock locks die with their process),
* the temporary files of interrupted writes (which may hold removed keys) are swept.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

from sidecar.rotation.keypool import KeyPool
from sidecar.store import Store

WORKER = Path(__file__).with_name("crash_worker.py")
ROUNDS = 15  # two workers killed per round: 30 kills
WORKERS = 2
OPS_BEFORE_KILL = (4, 12)  # completed operations a worker does before each kill
HANG_GUARD = 60.0  # seconds; only turns a worker that stopped working into a failure


def start_worker(home: Path, log: Path, worker: int, seed: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(home), str(log), str(worker), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until ready (or the worker died)
    assert line == b"ready\n", (line, proc.stderr.read() if proc.stderr else b"")
    return proc


def read_log(path: Path) -> list[tuple[str, str, str]]:
    """(begin|done, op, key) of each whole line; a line cut by the kill is dropped."""
    text = path.read_text() if path.exists() else ""
    lines = text.split("\n")[:-1]  # the last piece has no newline: cut or empty
    return [tuple(line.split(" ")) for line in lines]  # type: ignore[misc]


def expected_states(log: list[tuple[str, str, str]]) -> dict[str, set[tuple[bool, bool]]]:
    """key → the (present, cooling) states the store may be in for it.

    Completed operations apply in order. An operation begun but never done (a kill came
    inside the call: the next line is another ``begin``, or the log ends) may or may not
    have been applied, so from there on the key may be in either state.
    """
    states: dict[str, set[tuple[bool, bool]]] = {}

    def apply(op: str, state: tuple[bool, bool]) -> tuple[bool, bool]:
        present, cooling = state
        if op == "add":
            return (True, cooling) if present else (True, False)
        if op == "remove":
            return (False, False)
        return (True, True) if present else (False, False)  # cooldown

    def maybe(op: str, key: str) -> None:
        now = states.get(key, {(False, False)})
        states[key] = now | {apply(op, s) for s in now}

    pending: tuple[str, str] | None = None
    for kind, op, key in log:
        if kind == "begin":
            if pending is not None:
                maybe(*pending)
            pending = (op, key)
            continue
        assert pending == (op, key), (pending, op, key)
        states[key] = {apply(op, s) for s in states.get(key, {(False, False)})}
        pending = None
    if pending is not None:
        maybe(*pending)
    return states


def check_store(home: Path, logs: list[Path]) -> int:
    """Assert the store is whole and holds every completed write; the keys checked."""
    store = Store(home)
    data = store.read()
    assert data.problems == [], data.problems
    assert store.set_aside_files() == [], "a file was set aside as corrupt"
    keypool = KeyPool(store, env={})
    creds = {c.secret: c for c in keypool.credentials("anthropic")}
    cooldowns = data.provider_state("anthropic").get("cooldowns", {})
    checked = 0
    for log in logs:
        for key, allowed in expected_states(read_log(log)).items():
            present = key in creds
            cooling = present and creds[key].state_key in cooldowns
            assert (present, cooling) in allowed, (log.name, key[-12:], present, cooling, allowed)
            checked += 1
    return checked


def count_done(log: Path) -> int:
    return sum(1 for kind, _, _ in read_log(log) if kind == "done")


def kill_after(proc: subprocess.Popen[bytes], log: Path, done: int, rng: random.Random) -> None:
    """SIGKILL ``proc`` once its log shows ``done`` completed operations.

    Counting, not sleeping, decides when: on a loaded machine the worker just gets
    there later, and every round does the same amount of work. A pause of a few
    milliseconds after the count is reached lands the kill anywhere in the next
    operation (before, inside or after its write).
    """
    deadline = time.monotonic() + HANG_GUARD
    while count_done(log) < done:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        assert time.monotonic() < deadline, f"no progress to {done} operations: hung?"
        time.sleep(0.002)
    time.sleep(rng.uniform(0, 0.01))
    proc.send_signal(signal.SIGKILL)


@pytest.mark.slow
def test_kill_9_mid_write_never_loses_a_completed_write(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rng = random.Random(8)
    logs = [tmp_path / f"worker-{w}.log" for w in range(WORKERS)]
    kills = 0
    for round_no in range(ROUNDS):
        procs = [start_worker(home, logs[w], w, round_no * WORKERS + w) for w in range(WORKERS)]
        for proc, log in zip(procs, logs, strict=True):
            kill_after(proc, log, count_done(log) + rng.randint(*OPS_BEFORE_KILL), rng)
            kills += 1
        for proc in procs:
            proc.wait(10)
            assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else b""
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        check_store(home, logs)

    assert kills == ROUNDS * WORKERS
    done = sum(count_done(log) for log in logs)
    assert done >= kills * OPS_BEFORE_KILL[0]
    assert check_store(home, logs) > 20
    # A transaction that writes sweeps the temporary files killed writers left behind.
    keypool = KeyPool(Store(home), env={})
    keypool.reset("anthropic")
    assert [p.name for p in home.iterdir() if p.name.endswith(".tmp")] == []


def test_a_temp_file_left_by_a_killed_writer_is_swept(tmp_path: Path) -> None:
    home = tmp_path / "home"
    keypool = KeyPool(Store(home), env={})
    keypool.add_key("anthropic", "sk-ant-api03-" + "k" * 30)
    stale = home / ".pool.json.abc123.tmp"
    stale.write_text('{"secret": "a removed key"}')
    # A transaction that writes (a reset of a pool already reset writes nothing, now that
    # the state is typed and compared as a whole).
    keypool.add_key("anthropic", "sk-ant-api03-" + "m" * 30)
    assert not stale.exists()


HOLDER = """
import sys, time
from pathlib import Path
from sidecar.store import Store
with Store(Path(sys.argv[1])).transaction():
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_lock_held_by_a_killed_process_is_free_at_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(home)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        lock = FileLock(home / ".lock", timeout=0.3)
        with pytest.raises(Timeout):  # the lock is real while its holder lives
            lock.acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(5)
        # Free at once: taken without waiting at all, with no stale-lock timeout and no
        # manual cleanup (a lock file left behind would make this raise Timeout).
        with FileLock(home / ".lock", timeout=0):
            pass
        with Store(home).transaction() as data:
            data.provider_state("anthropic")["current"] = None
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(5)
        if holder.stdout is not None:
            holder.stdout.close()


def test_expected_states_logic() -> None:
    log = [
        ("begin", "add", "a"),
        ("done", "add", "a"),
        ("begin", "cooldown", "a"),
        ("done", "cooldown", "a"),
        ("begin", "add", "b"),
        ("done", "add", "b"),
        ("begin", "remove", "b"),
        ("done", "remove", "b"),
        ("begin", "remove", "a"),
    ]
    states = expected_states(log)
    assert states["a"] == {(True, True), (False, False)}
    assert states["b"] == {(False, False)}
    # A kill inside "add c", then the next run cools c down (it saw c in the pool).
    log += [("begin", "add", "c"), ("begin", "cooldown", "c"), ("done", "cooldown", "c")]
    assert expected_states(log)["c"] == {(False, False), (True, True)}
    assert defaultdict(set, states)["d"] == set()
