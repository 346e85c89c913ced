"""Accounts from the terminal: imports, pasted tokens, profile names, order, Azure maps.

Each test runs the real ``llm-sidecar`` command on a temporary home, as a user would.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sidecar.fake import FakeProvider, Reply, Text
from tests.cli.test_cli import run

# -- Azure deployment maps ---------------------------------------------------------


def test_pis_deployment_name_map_is_honoured(home: Path, make_key: Callable[..., str]) -> None:
    key = make_key("az-")
    with FakeProvider() as fake:
        fake.script(key, [], default=Reply([Text("Mapped.")]))
        result = run(
            home,
            "ask",
            "--provider",
            "azure-openai",
            "--model",
            "gpt-4o",
            "hello",
            env={
                "AZURE_OPENAI_API_KEY": key,
                "AZURE_OPENAI_BASE_URL": fake.url,
                "AZURE_OPENAI_DEPLOYMENT_NAME_MAP": "gpt-4o=team-4o,o3=team-o3",
            },
        )
        paths = [r.path for r in fake.requests]
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Mapped."
    assert paths and paths[0].startswith("/openai/deployments/team-4o/chat/completions")


def test_a_deployment_map_that_cannot_be_parsed_names_its_variable(
    home: Path, make_key: Callable[..., str]
) -> None:
    for variable in ("AZURE_OPENAI_DEPLOYMENT_NAME_MAP", "AZURE_OPENAI_DEPLOYMENT_MAP"):
        result = run(
            home,
            "ask",
            "--provider",
            "azure-openai",
            "--model",
            "gpt-4o",
            "hello",
            env={
                "AZURE_OPENAI_API_KEY": make_key("az-"),
                # Never contacted: the map is read before any request.
                "AZURE_OPENAI_BASE_URL": "http://127.0.0.1:9",
                variable: "gpt-4o=team-4o,o3",
            },
        )
        assert result.returncode == 1, result.stdout
        assert variable in result.stderr
        assert "model=deployment" in result.stderr
        assert "Traceback" not in result.stderr
