"""Everything wrong with the home, for ``status``, ``sidecar/status`` and ``doctor``.

One list, built in one place, so the three report the same things: files set aside
or refused, unreadable files, a ``.lock`` that blocks every write, a ``.env`` that
was not read, a fallbacks or budgets file that cannot be used, and anything others
can read. Each finding names the file and the
fix; the ones ``doctor --fix`` can repair carry the repair.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from sidecar import paths
from sidecar.errors import StoreError
from sidecar.store.envfile import read_env_file

if TYPE_CHECKING:
    from sidecar.store import Store

__all__ = ["Finding", "findings", "problem_texts"]


@attrs.frozen
class Finding:
    text: str  # the file, what is wrong, and what to do
    repair: Callable[[], str] | None = None  # for doctor --fix; says what it did


def findings(store: Store) -> list[Finding]:
    """Never raises: a home that cannot be used is itself the finding."""
    try:
        store.check_home()
    except StoreError as exc:
        return [Finding(exc.message)]
    found: list[Finding] = []
    lock = store.lock_problem()
    if lock:
        found.append(Finding(lock, _remover(store.home / paths.LOCK_FILE)))
    try:
        found += [Finding(p) for p in store.read().problems]
    except StoreError as exc:
        found.append(Finding(exc.message))
    found += [
        Finding(f"{p}: corrupt file set aside; inspect it, then delete it")
        for p in store.set_aside_files()
    ]
    for name in paths.ROUTING_FILES:
        try:
            store.read_file(name)
        except StoreError as exc:
            # Read as absent meanwhile (no fallback, no budget): say so, with the way out.
            found.append(
                Finding(
                    f"{exc.message}; it is ignored until fixed: delete it, or save a new"
                    " setting (`llm-sidecar fallback add`, `budget set`), which sets it aside"
                )
            )
    env = read_env_file(store.home)
    if env.problem:
        found.append(Finding(env.problem))
    for path, mode, wanted in store.permission_problems():
        text = (
            f"{path} is mode {mode:o}, readable by others; should be {wanted:o}:"
            " run `llm-sidecar doctor --fix`"
        )
        found.append(Finding(text, _chmodder(path, mode, wanted)))
    return found


def problem_texts(store: Store) -> list[str]:
    """The findings as ``problems`` of ``status`` and ``sidecar/status``."""
    return [f.text for f in findings(store)]


def _remover(path: Path) -> Callable[[], str]:
    def remove() -> str:
        # Only the link or node itself: a link's target is left as it is.
        if path.is_dir() and not path.is_symlink():
            path.rmdir()  # only when empty: anything in it is not ours to delete
        else:
            os.unlink(path)
        return f"removed {path}; the next write creates the lock file afresh"

    return remove


def _chmodder(path: Path, mode: int, wanted: int) -> Callable[[], str]:
    def chmod() -> str:
        path.chmod(wanted)  # through a link, its target: what the store reads
        return f"{path} was mode {mode:o}, now {wanted:o}"

    return chmod
