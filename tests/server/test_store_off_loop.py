"""Another process holding the store's lock does not stop this sidecar from answering.

The stream below must record a rate limit (a store transaction) while a second process
holds the lock; the wait for it happens off the event loop, so a status request sent
meanwhile is answered first, and the stream finishes once the lock is let go.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.fake import FakeProvider, RateLimited, Reply, Text
from tests.conftest import answer_text
from tests.server.conftest import SidecarClient

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="waiters are seen in /proc/locks"
)


def lock_waiters(lock_file: Path) -> int:
    """How many processes wait in ``flock`` for ``lock_file`` (Linux lists them)."""
    inode = f":{os.stat(lock_file).st_ino} "
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in lines if "->" in line and inode in line)


async def test_a_lock_held_elsewhere_does_not_stall_other_requests(
    editor: SidecarClient, fake: FakeProvider, home: Path, make_key: Callable[..., str]
) -> None:
    first, second = make_key(), make_key()
    fake.script(first, [RateLimited(retry_after=600)])
    fake.script(second, [], default=Reply([Text("The answer is 42.")]))
    for key in (first, second):
        await editor.request("sidecar/keyAdd", {"provider": "anthropic", "key": key})

    # Another process (this test) holds the lock, as a second sidecar writing would.
    lock_file = home / ".lock"
    held = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        stream = asyncio.ensure_future(
            editor.request(
                "sidecar/stream",
                {
                    "provider": "anthropic",
                    "model": "claude-sonnet-4-5",
                    "maxTokens": 64,
                    "messages": [{"role": "user", "content": "What is the answer?"}],
                },
            )
        )
        # The sidecar got the rate limit and now waits for the lock to record it.
        async with asyncio.timeout(10):  # only against a hang
            while lock_waiters(lock_file) == 0:
                await asyncio.sleep(0.01)
        status = await asyncio.wait_for(
            editor.request("sidecar/status", {"provider": "anthropic"}), 5
        )
        assert len(status["providers"][0]["credentials"]) == 2
        assert not stream.done()  # still waiting: the lock is held
    finally:
        os.close(held)
    result = await stream
    assert answer_text(result) == "The answer is 42." and result["attempts"] == 2
