"""Nothing the sidecar writes is readable by others, whatever the umask; what is, it reports.

The sidecar's home holds keys: it must be 0700 and every file in it 0600, including
the lock, files set aside as corrupt and a log file kept there. ``status`` and
``doctor`` report anything others can read (a symlinked file by its target);
``doctor --fix`` makes it private.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sidecar.fake import FakeProvider, Reply, Text
from tests.conftest import answer_text, leaked
from tests.reliability.support import RawServer
from tests.server.conftest import server_env


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def cli(
    home: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "sidecar", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=server_env(home, env),
    )
    assert not leaked(result.stdout + result.stderr), "a key was printed"
    return result


def everything_under(home: Path) -> list[Path]:
    return [home, *sorted(home.rglob("*"))]


def test_nothing_is_readable_by_others_under_umask_000(
    tmp_path: Path, make_key: Callable[..., str]
) -> None:
    home = tmp_path / "home"  # created by the sidecar itself, under umask 000
    log_file = home / "logs" / "sidecar.log"
    keys = [make_key(), make_key()]
    with umask(0o000), FakeProvider() as fake:
        for key in keys:
            fake.script(key, [], default=Reply([Text("hi")]))
        args = ["serve", "--log-file", str(log_file), "--log-level", "DEBUG"]
        server = RawServer(home, args=args, env={"ANTHROPIC_BASE_URL": fake.url})
        try:
            server.initialize()
            for key in keys:
                server.request("sidecar/keyAdd", {"provider": "anthropic", "key": key})
            stream = {
                "provider": "anthropic",
                "model": "claude-sonnet-4-5",
                "maxTokens": 16,
                "messages": [{"role": "user", "content": "hi"}],
            }
            assert answer_text(server.request("sidecar/stream", stream)["result"]) == "hi"
            # Another program leaves a corrupt, world-readable state file behind.
            (home / "state.json").unlink()
            fd = os.open(home / "state.json", os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, b"{ not json")
            os.close(fd)
            status = server.request("sidecar/status", {})["result"]
            assert any("corrupt" in p for p in status["problems"]), status
            assert server.request("sidecar/keyReset", {"provider": "anthropic"})["result"]
        finally:
            server.close()

        assert cli(home, "key", "add", "-p", "openai", stdin=make_key("sk-proj-")).returncode == 0
        token = make_key("sk-ant-oat01-")
        assert cli(home, "auth", "paste-token", "-p", "anthropic", stdin=token).returncode == 0
        assert cli(home, "key", "remove", "-p", "anthropic", "--index", "1").returncode == 0
        cli(home, "status")
        cli(home, "doctor")

    names = {p.name for p in home.iterdir()}
    assert {"pool.json", "state.json", "credentials.json", ".lock", "logs"} <= names
    assert any(".corrupt-" in n for n in names)
    assert log_file.stat().st_size > 0
    readable = [
        f"{p.relative_to(tmp_path)} {mode(p):o}"
        for p in everything_under(home)
        if mode(p) & 0o077 or (p.is_dir() and mode(p) != 0o700)
    ]
    assert readable == []
    assert not [line for line in cli(home, "doctor").stdout.splitlines() if "mode" in line]


def test_a_log_file_that_exists_is_made_private_and_a_symlink_is_refused(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    log_file = tmp_path / "old.log"
    log_file.write_text("earlier lines\n")
    log_file.chmod(0o644)
    from sidecar.logs import open_private_log

    with open_private_log(log_file) as f:
        f.write("more\n")
    assert mode(log_file) == 0o600 and log_file.read_text() == "earlier lines\nmore\n"

    victim = tmp_path / "someone-elses-file"
    victim.write_text("precious\n")
    link = tmp_path / "link.log"
    link.symlink_to(victim)
    with pytest.raises(OSError):
        open_private_log(link)
    result = cli(home, "serve", "--log-file", str(link))
    assert result.returncode != 0
    assert victim.read_text() == "precious\n"


# -- reported by status and doctor, fixed by doctor --fix -------------------------------


def pooled_home(home: Path, make_key: Callable[..., str]) -> str:
    key = make_key()
    assert cli(home, "key", "add", "-p", "anthropic", stdin=key).returncode == 0
    return key


def assert_reported_then_fixed(home: Path, path: Path, fixed_mode: int) -> None:
    assert "readable by others" in cli(home, "status").stdout
    report = cli(home, "doctor")
    assert report.returncode == 1 and str(path) in report.stdout, report.stdout
    fixed = cli(home, "doctor", "--fix")
    assert "fixed:" in fixed.stdout, fixed.stdout
    assert stat.S_IMODE(path.stat().st_mode) == fixed_mode  # through a symlink, its target
    assert cli(home, "doctor").returncode == 0
    assert "readable by others" not in cli(home, "status").stdout


def test_a_symlinked_pool_file_is_judged_by_its_target(
    tmp_path: Path, home: Path, make_key: Callable[..., str]
) -> None:
    key = pooled_home(home, make_key)
    outside = tmp_path / "dotfiles" / "pool.json"
    outside.parent.mkdir()
    (home / "pool.json").rename(outside)
    outside.chmod(0o644)
    (home / "pool.json").symlink_to(outside)
    assert key[-4:] in cli(home, "status").stdout  # read through the link
    assert_reported_then_fixed(home, home / "pool.json", 0o600)
    assert mode(outside) == 0o600


def test_a_home_others_can_enter_is_made_private_on_first_use(
    tmp_path: Path, make_key: Callable[..., str]
) -> None:
    """Its .env is read as configuration: never used as it is (issue 11, item 21)."""
    real = tmp_path / "real-home"
    real.mkdir()
    real.chmod(0o755)
    (real / ".env").write_text(f"OPENAI_API_KEY={make_key('sk-proj-')}\n")
    (real / ".env").chmod(0o600)
    home = tmp_path / "home-link"  # judged by its target, like any link in the home
    home.symlink_to(real)

    assert cli(home, "status").returncode == 0  # a read is a first use too
    assert stat.S_IMODE(real.stat().st_mode) == 0o700


def test_a_home_owned_by_someone_else_is_refused(
    tmp_path: Path, make_key: Callable[..., str]
) -> None:
    if os.geteuid() == 0:
        home = tmp_path / "theirs"
        home.mkdir()
        home.chmod(0o755)
        os.chown(home, 65534, 65534)
    else:
        home = Path("/")  # owned by root: only ever read here, and refused before that
    before = sorted(p.name for p in home.iterdir())
    mode_before = stat.S_IMODE(home.stat().st_mode)

    for args in (("status",), ("key", "add", "-p", "anthropic")):
        result = cli(home, *args, stdin=make_key())
        assert result.returncode == 1
        assert "belongs to uid" in result.stderr and "refusing" in result.stderr, result.stderr
    doctor = cli(home, "doctor")
    assert doctor.returncode == 1 and "belongs to uid" in doctor.stdout
    assert sorted(p.name for p in home.iterdir()) == before
    assert stat.S_IMODE(home.stat().st_mode) == mode_before


def test_a_readable_env_file_and_dangling_links_are_handled(
    tmp_path: Path, home: Path, make_key: Callable[..., str]
) -> None:
    pooled_home(home, make_key)
    env_file = home / ".env"
    env_file.write_text(f"OPENAI_API_KEY={make_key('sk-proj-')}\n")
    env_file.chmod(0o644)
    (home / "dangling.json").symlink_to(tmp_path / "nowhere")
    assert_reported_then_fixed(home, env_file, 0o600)


@pytest.mark.parametrize("umask_value", [0o000, 0o002, 0o022])
def test_files_the_cli_creates_are_private_whatever_the_umask(
    tmp_path: Path, make_key: Callable[..., str], umask_value: int
) -> None:
    home = tmp_path / "home"
    with umask(umask_value):
        pooled_home(home, make_key)
        token = make_key("sk-ant-oat01-")
        assert cli(home, "auth", "paste-token", "-p", "anthropic", stdin=token).returncode == 0
        cli(home, "key", "reset", "-p", "anthropic")
    assert mode(home) == 0o700
    for path in home.iterdir():
        assert mode(path) == 0o600, (path.name, oct(mode(path)))
    assert json.loads((home / "pool.json").read_text())["pools"]["anthropic"]
