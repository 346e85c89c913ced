"""Fixtures of the OAuth login tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sidecar.fake import FakeProvider
from tests.conftest import TEST_SECRETS


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    """The fake provider, which is also the fake authorization server.

    Every token it issues is recorded as a test secret, so the leak checks cover them.
    """
    with FakeProvider() as provider:
        provider.oauth.on_issue = TEST_SECRETS.add
        yield provider
