"""A damaged home, one per case: nothing is lost, everything is said, nothing hangs.

Each case damages a fresh home the way the attack round of issue 18 did (valid JSON of
the wrong shape, JSON that cannot be parsed without a RecursionError or a ValueError, a
FIFO, a device or a huge file where a store file should be, links to them, a linked
``.lock``), then drives the real CLI and the real server over stdio. The rule checked:
what the store cannot interpret is kept byte for byte (set aside as
``<name>.corrupt-<time>`` before any write), reported by ``status``, ``sidecar/status``
and ``doctor``, and never read as empty and overwritten; the process answers and stays up.

Every command runs under an address-space limit, so a read of ``/dev/zero`` fails the
test with a MemoryError instead of taking the machine's memory, and under a timeout, so
a read of a FIFO fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import resource
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.fake import FakeProvider, Reply, Text
from tests.conftest import TEST_SECRETS, answer_text, leaked
from tests.reliability.support import RawServer, peak_rss
from tests.server.conftest import server_env

MEMORY_LIMIT = 1024 * 1024 * 1024  # bytes of address space for one CLI run or server
# What a server may hold at its peak (VmHWM): about 40 MiB at rest, plus one file at the
# 16 MiB read cap and its parse, with room to spare. Reading /dev/zero blows past it.
RSS_CAP = 160 * 1024 * 1024
COMMAND_TIMEOUT = 30  # seconds: only to turn a hang into a failure


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def cli(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "sidecar", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        env=server_env(home),
        preexec_fn=_limit_memory,
    )
    out = result.stdout + result.stderr
    assert not leaked(out), "a key was printed"
    assert "Traceback" not in out, out
    return result


def pooled_key(home: Path, make_key: Callable[..., str]) -> str:
    key = make_key()
    assert cli(home, "key", "add", "-p", "anthropic", stdin=key).returncode == 0
    return key


def set_aside(home: Path, name: str) -> list[Path]:
    return sorted(home.glob(f"{name}.corrupt-*"))


def kept_somewhere(home: Path, name: str, content: bytes) -> bool:
    """``content`` is still in the home: at its path, or in a file set aside."""
    candidates = [home / name, *set_aside(home, name)]
    return any(p.is_file() and p.read_bytes() == content for p in candidates)


# -- 1. valid JSON, wrong types inside: keys are never lost ---------------------------


def wrong_shapes(key: str) -> dict[str, tuple[str, object]]:
    record = {"type": "api_key", "key": key}
    return {
        "pools-is-a-list": ("pool.json", {"version": 1, "pools": [{"id": "x", **record}]}),
        "one-pool-is-an-object": (
            "pool.json",
            {"version": 1, "pools": {"anthropic": {"id": "anthropic:pool-1", **record}}},
        ),
        "profiles-is-a-list": (
            "credentials.json",
            {"version": 1, "profiles": [{"provider": "anthropic", **record}]},
        ),
        "order-is-a-string": (
            "credentials.json",
            {
                "version": 1,
                "profiles": {"anthropic:work": {"provider": "anthropic", **record}},
                "order": {"anthropic": "anthropic:work"},
            },
        ),
        "a-key-as-a-provider-name": ("pool.json", {"version": 1, "pools": {key.lower(): {}}}),
        "a-state-section-is-a-list": (
            "state.json",
            {"version": 1, "providers": {"anthropic": {"cooldowns": []}}},
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "pools-is-a-list",
        "one-pool-is-an-object",
        "a-key-as-a-provider-name",
        "profiles-is-a-list",
        "order-is-a-string",
        "a-state-section-is-a-list",
    ],
)
def test_a_document_of_the_wrong_shape_is_kept_reported_and_never_overwritten(
    tmp_path: Path, make_key: Callable[..., str], case: str
) -> None:
    home = tmp_path / "home"
    key = make_key()
    TEST_SECRETS.add(key.lower())  # a name read from the file is never echoed if key-like
    name, doc = wrong_shapes(key)[case]
    home.mkdir(mode=0o700)
    content = json.dumps(doc).encode()
    (home / name).write_bytes(content)
    (home / name).chmod(0o600)

    status = cli(home, "status")
    assert status.returncode == 0
    assert f"{name}" in status.stdout and "set aside" in status.stdout, status.stdout
    # Writes of every document: a key, a login, rotation state.
    assert cli(home, "key", "add", "-p", "anthropic", stdin=make_key()).returncode == 0
    token = make_key("sk-ant-oat01-")
    assert cli(home, "auth", "paste-token", "-p", "anthropic", stdin=token).returncode == 0
    assert cli(home, "key", "reset", "-p", "anthropic").returncode == 0

    assert kept_somewhere(home, name, content), "the damaged file was overwritten"
    assert [p.read_bytes() for p in set_aside(home, name)] == [content]
    doctor = cli(home, "doctor")
    assert doctor.returncode == 1 and f"{name}.corrupt-" in doctor.stdout, doctor.stdout


# -- 2. JSON that fails to parse in other ways than a decode error ----------------------


UNPARSABLE = {
    "deep-nesting": ("pool.json", b"[" * 100_000 + b"]" * 100_000),
    "huge-integer": ("state.json", b'{"version": 1, "n": ' + b"7" * 5000 + b"}"),
    "nested-too-deep-to-write-back": (
        "credentials.json",
        b'{"version": 1, "x": ' + b"[" * 200 + b"]" * 200 + b"}",
    ),
    "not-utf8": ("credentials.json", b'{"version": 1, "profiles": {"\xff": 1}}'),
}


@pytest.mark.parametrize("case", sorted(UNPARSABLE))
def test_every_way_a_file_fails_to_parse_is_corrupt_not_a_crash(
    home: Path, make_key: Callable[..., str], case: str
) -> None:
    name, content = UNPARSABLE[case]
    key = pooled_key(home, make_key) if name != "pool.json" else None
    home.mkdir(mode=0o700, exist_ok=True)
    (home / name).write_bytes(content)

    status = cli(home, "status")
    assert status.returncode == 0 and name in status.stdout, status.stdout + status.stderr
    if key is not None:
        assert key[-4:] in status.stdout  # the other files keep working
    assert cli(home, "key", "add", "-p", "anthropic", stdin=make_key()).returncode == 0
    assert cli(home, "key", "reset", "-p", "anthropic").returncode == 0
    assert [p.read_bytes() for p in set_aside(home, name)] == [content]
    assert cli(home, "doctor").returncode == 1


# -- 3. FIFOs, devices, links to /dev/zero, huge files: refused, never read ------------


def make_fifo(path: Path) -> None:
    os.mkfifo(path, 0o600)


def link_to_dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def huge_sparse_file(path: Path) -> None:
    with open(path, "wb") as f:
        f.truncate(17 * 1024 * 1024)  # over the 16 MiB cap; sparse, so cheap


NOT_REGULAR = {"fifo": make_fifo, "dev-zero": link_to_dev_zero, "huge": huge_sparse_file}


@pytest.mark.parametrize("name", ["pool.json", "state.json", "credentials.json"])
@pytest.mark.parametrize("kind", sorted(NOT_REGULAR))
def test_a_store_file_that_is_not_a_regular_file_is_refused_and_set_aside(
    home: Path, make_key: Callable[..., str], name: str, kind: str
) -> None:
    key = pooled_key(home, make_key) if name != "pool.json" else None
    home.mkdir(mode=0o700, exist_ok=True)
    (home / name).unlink(missing_ok=True)
    NOT_REGULAR[kind](home / name)

    status = cli(home, "status")
    assert status.returncode == 0 and name in status.stdout, status.stdout + status.stderr
    if key is not None:
        assert key[-4:] in status.stdout
    assert cli(home, "key", "add", "-p", "anthropic", stdin=make_key()).returncode == 0
    aside = set_aside(home, name)
    assert len(aside) == 1
    assert not (home / name).is_symlink()
    assert not (home / name).exists() or stat.S_ISREG((home / name).stat().st_mode)
    if kind == "dev-zero":
        assert os.readlink(aside[0]) == "/dev/zero"  # the link moved, as a link
    doctor = cli(home, "doctor")
    assert doctor.returncode == 1 and str(aside[0]) in doctor.stdout


@pytest.mark.parametrize("kind", sorted(NOT_REGULAR))
def test_an_env_file_that_is_not_a_regular_file_is_not_read_and_reported(
    home: Path, make_key: Callable[..., str], kind: str
) -> None:
    key = pooled_key(home, make_key)
    NOT_REGULAR[kind](home / ".env")

    status = cli(home, "status")
    assert status.returncode == 0 and key[-4:] in status.stdout
    assert ".env" in status.stdout and "not read" in status.stdout, status.stdout
    doctor = cli(home, "doctor")
    assert doctor.returncode == 1 and str(home / ".env") in doctor.stdout
    assert (home / ".env").lstat()  # the user's file: left where it is


# -- 4. links, the lock, unreadable files, state of the wrong type ---------------------


def test_a_corrupt_file_that_is_a_link_is_set_aside_as_a_link(
    tmp_path: Path, home: Path, make_key: Callable[..., str]
) -> None:
    pooled_key(home, make_key)
    outside = tmp_path / "dotfiles" / "state.json"
    outside.parent.mkdir()
    outside.write_text("{ not json")
    (home / "state.json").unlink(missing_ok=True)
    (home / "state.json").symlink_to(outside)

    status = cli(home, "status")
    assert status.returncode == 0 and "state.json" in status.stdout
    (aside,) = set_aside(home, "state.json")
    assert aside.is_symlink() and aside.resolve() == outside
    assert outside.read_text() == "{ not json"  # the target is not touched
    assert cli(home, "key", "reset", "-p", "anthropic").returncode == 0


def test_a_lock_that_is_a_link_is_named_with_its_fix(
    tmp_path: Path, home: Path, make_key: Callable[..., str]
) -> None:
    key = pooled_key(home, make_key)
    victim = tmp_path / "precious.txt"
    victim.write_text("precious\n")
    (home / ".lock").unlink()
    (home / ".lock").symlink_to(victim)

    add = cli(home, "key", "add", "-p", "anthropic", stdin=make_key())
    assert add.returncode == 1
    assert ".lock is a symbolic link" in add.stderr and "doctor --fix" in add.stderr, add.stderr
    assert victim.read_text() == "precious\n"  # neither locked nor truncated
    assert key[-4:] in cli(home, "status").stdout  # reads still work
    assert ".lock" in cli(home, "status").stdout
    doctor = cli(home, "doctor")
    assert doctor.returncode == 1 and str(home / ".lock") in doctor.stdout, doctor.stdout
    assert "fixed:" in cli(home, "doctor", "--fix").stdout
    assert cli(home, "key", "add", "-p", "anthropic", stdin=make_key()).returncode == 0
    assert victim.read_text() == "precious\n"
    assert cli(home, "doctor").returncode == 0


def test_a_store_file_that_is_a_directory_does_not_break_doctor(
    home: Path, make_key: Callable[..., str]
) -> None:
    key = pooled_key(home, make_key)
    (home / "credentials.json").mkdir()
    (home / "credentials.json" / "kept").write_text("x")

    doctor = cli(home, "doctor")
    assert doctor.returncode == 1 and "credentials.json" in doctor.stdout, doctor.stdout
    assert key[-4:] in cli(home, "status").stdout
    (aside,) = set_aside(home, "credentials.json")
    assert (aside / "kept").read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file of mode 000")
def test_an_unreadable_store_file_is_reported_and_never_replaced(
    home: Path, make_key: Callable[..., str]
) -> None:
    pooled_key(home, make_key)
    content = (home / "pool.json").read_bytes()
    (home / "pool.json").chmod(0)
    try:
        status = cli(home, "status")
        assert status.returncode == 0 and "cannot read" in status.stdout
        add = cli(home, "key", "add", "-p", "anthropic", stdin=make_key())
        assert add.returncode == 1 and "pool.json" in add.stderr
        assert "nothing was saved" in add.stderr
        assert cli(home, "doctor").returncode == 1
    finally:
        (home / "pool.json").chmod(0o600)
    assert (home / "pool.json").read_bytes() == content


def test_key_remove_with_state_sections_of_the_wrong_type(
    home: Path, make_key: Callable[..., str]
) -> None:
    key = pooled_key(home, make_key)
    pooled_key(home, make_key)
    state = {
        "version": 1,
        "providers": {"anthropic": {"cooldowns": [1], "rejected": "no", "usage": {"x": 3}}},
    }
    content = json.dumps(state).encode()
    (home / "state.json").write_bytes(content)

    removed = cli(home, "key", "remove", "-p", "anthropic", "--index", "1")
    assert removed.returncode == 0, removed.stderr
    assert key[-4:] not in cli(home, "status").stdout
    assert [p.read_bytes() for p in set_aside(home, "state.json")] == [content]


# -- over stdio ---------------------------------------------------------------------------


STDIO_CASES: dict[str, Callable[[Path], None]] = {
    "pools-is-a-list": lambda home: (home / "pool.json").write_text('{"pools": [1]}'),
    "deep-nesting": lambda home: (home / "state.json").write_bytes(b"[" * 100_000),
    "fifo": lambda home: make_fifo(home / "credentials.json"),
    "dev-zero": lambda home: link_to_dev_zero(home / "state.json"),
    "env-fifo": lambda home: make_fifo(home / ".env"),
    "huge-pool": lambda home: huge_sparse_file(home / "pool.json"),
}


@pytest.mark.parametrize("case", sorted(STDIO_CASES))
def test_over_stdio_the_server_reports_and_keeps_serving(
    tmp_path: Path, make_key: Callable[..., str], case: str
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    STDIO_CASES[case](home)
    server = RawServer(home, memory_limit=MEMORY_LIMIT)
    try:
        server.initialize()
        status = server.request("sidecar/status", {})
        assert "result" in status, status
        assert status["result"]["problems"], status
        added = server.request("sidecar/keyAdd", {"provider": "anthropic", "key": make_key()})
        assert added["result"]["added"] is True, added
        again = server.request("sidecar/status", {})["result"]
        assert again["providers"][0]["size"] == 1
        assert again["problems"]
        assert peak_rss(server.proc.pid) < RSS_CAP
    finally:
        server.close()
    assert not leaked(server.raw_out.decode(errors="replace"))


def test_over_stdio_a_linked_lock_is_a_clear_error_and_a_reported_problem(
    tmp_path: Path, make_key: Callable[..., str]
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / ".lock").symlink_to(tmp_path / "elsewhere")
    server = RawServer(home, memory_limit=MEMORY_LIMIT)
    try:
        server.initialize()
        added = server.request("sidecar/keyAdd", {"provider": "anthropic", "key": make_key()})
        assert ".lock is a symbolic link" in added["error"]["message"], added
        problems = server.request("sidecar/status", {})["result"]["problems"]
        assert any(".lock" in p for p in problems), problems
    finally:
        server.close()
    assert not (tmp_path / "elsewhere").exists()


def test_a_prices_file_that_is_a_fifo_does_not_stall_a_stream(
    tmp_path: Path, make_key: Callable[..., str]
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    make_fifo(home / "prices.json")
    key = make_key()
    with FakeProvider() as fake:
        fake.script(key, [], default=Reply([Text("hi")]))
        server = RawServer(home, env={"ANTHROPIC_BASE_URL": fake.url}, memory_limit=MEMORY_LIMIT)
        try:
            server.initialize()
            server.request("sidecar/keyAdd", {"provider": "anthropic", "key": key})
            stream = {
                "provider": "anthropic",
                "model": "claude-sonnet-4-5",
                "maxTokens": 16,
                "messages": [{"role": "user", "content": "hi"}],
            }
            assert answer_text(server.request("sidecar/stream", stream)["result"]) == "hi"
        finally:
            server.close()
