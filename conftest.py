"""Checks that apply to every test in the repository, the clients' included."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import leaked


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    captured = "\n".join(content for _, content in report.sections)
    found = leaked(captured)
    if found and report.outcome != "failed":
        report.outcome = "failed"
        report.longrepr = (
            f"a test secret appeared in captured output or logs during {report.when}: "
            f"{len(found)} key(s) leaked"
        )
