"""What the figures were measured on: the machine, its load, the versions."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

__all__ = ["describe", "load_average"]

PACKAGES = ("pygls", "lsprotocol", "httpx", "httpx-sse", "anthropic", "litellm")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    out = subprocess.run(
        ["git", *args], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
    )
    return out.stdout.strip()


def _commit() -> str:
    """The commit measured, and whether the sidecar's code differed from it."""
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--", "sidecar")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" with uncommitted changes to sidecar/" if dirty else "")


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def describe() -> list[tuple[str, str]]:
    """(what, value) pairs for the report's machine table."""
    versions = ", ".join(f"{p} {_version(p)}" for p in PACKAGES)
    return [
        ("date", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("CPU", f"{_cpu_model()}, {os.cpu_count()} cores"),
        ("memory", f"{_memory_gib():.1f} GiB"),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", f"{platform.python_implementation()} {sys.version.split()[0]}"),
        ("bytecode", "every spawn runs compiled bytecode, as after pip install"),
        ("llm-sidecar", f"{_version('llm-sidecar')}, commit {_commit()}"),
        ("packages", versions),
    ]
