"""Fixtures for the fake provider's own tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_support import KEY, OPENAI_KEY

from sidecar.fake import FakeProvider


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(keys=[KEY, OPENAI_KEY]) as provider:
        yield provider
