"""Real clients run against the gateway: where to find them, and a sealed environment.

Unlike the SDK tests, these run another project's program as a user would. Each one is
found through its own variable (``.ci/run`` installs it into ``~/.cache/llm-sidecar-ci``
and names it there), else on PATH; a test whose tool is absent is skipped and says how
to install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from sidecar.fake import FakeProvider, RecordedRequest, fingerprint
from tests.conftest import leaked

__all__ = ["find_tool", "requests_to", "run_tool", "sealed_env", "skip_without"]

# Where an npm or pip install would go if a tool tried one at run time: a closed port on
# loopback, so that a test never reaches beyond this machine.
_NO_REGISTRY = "http://127.0.0.1:9/"


def find_tool(variable: str, command: str) -> str | None:
    """The tool named in ``variable`` (it must be executable), else ``command`` on PATH."""
    named = os.environ.get(variable)
    if named:
        return named if os.access(named, os.X_OK) else None
    return shutil.which(command)


def skip_without(
    tool: str | None, name: str, install: str, variable: str, *, in_ci: bool = True
) -> pytest.MarkDecorator:
    done_by = ", as .ci/run does" if in_ci else " (.ci/run does not: too large)"
    return pytest.mark.skipif(
        tool is None,
        reason=f"{name} is not installed ({install}{done_by}, then {variable}=path)",
    )


def sealed_env(home: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """Nothing of this machine's environment: no real key, login or config is picked up,
    and no package registry or telemetry endpoint is reachable."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_STATE_HOME": str(home / ".local/state"),
        "npm_config_registry": _NO_REGISTRY,
        "PIP_INDEX_URL": _NO_REGISTRY,
        **extra,
    }


def run_tool(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        list(argv),
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=180,  # only against a hang; each answers in seconds
        stdin=subprocess.DEVNULL,
    )
    output = done.stdout + done.stderr
    assert not leaked(output), "a pool key reached the tool"
    return done


def requests_to(fake: FakeProvider, path: str, keys: Sequence[str]) -> list[RecordedRequest]:
    """The fake's requests on ``path``, checked to carry only pool keys (never the token)."""
    sent = [r for r in fake.requests if r.path == path]
    assert {r.key for r in sent} <= {fingerprint(k) for k in keys}, [r.key for r in sent]
    return sent
