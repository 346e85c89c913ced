"""`llm-sidecar key add` with many keys on stdin, and what `llm-sidecar status` loads."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar import cli
from sidecar.store import Store, StoreData
from tests.cli.test_cli import run

N = 200


def test_many_keys_from_stdin_are_added_in_one_transaction(
    home: Path,
    make_key: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run(home, "key", "add", "-p", "anthropic", stdin=make_key())  # the home and its files exist
    keys = [make_key() for _ in range(N)]
    # In this process, to count the transactions (a file watcher would see merged events).
    transactions = []
    real = Store.transaction

    def counted(self: Store) -> contextlib.AbstractContextManager[StoreData]:
        transactions.append(1)
        return real(self)

    monkeypatch.setattr(Store, "transaction", counted)
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(keys) + "\n"))
    assert cli.main(["key", "add", "-p", "anthropic"]) == 0
    assert capsys.readouterr().out.count("added: ") == N
    assert len(transactions) == 1
    listed = run(home, "key", "list", "-p", "anthropic").stdout
    assert f"{N + 1}. " in listed


def test_a_bad_key_among_many_adds_none_of_them(home: Path, make_key: Callable[..., str]) -> None:
    keys = [make_key(), "not a key", make_key()]
    result = run(home, "key", "add", "-p", "anthropic", stdin="\n".join(keys) + "\n")
    assert result.returncode != 0 and "printable ASCII" in result.stderr
    assert "added: " not in result.stdout
    status = run(home, "status").stdout
    assert "no credentials" in status


def test_status_does_not_load_what_only_json_output_needs(home: Path) -> None:
    code = (
        "import sys\n"
        "from sidecar.cli import main\n"
        "main(['status'])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'cattrs', 'tempfile'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
