"""Pushing status-bar updates when anything changes, in this process or another.

Every sidecar process of the user shares one store. Each watches the store's
files (file notifications where the platform has them, else a cheap ``stat``
twice a second; see :mod:`sidecar.store._watch`) and re-derives every provider's
status when they change, and every few seconds anyway so that a cooldown that
runs out is noticed; it sends only the statuses that differ from what it sent
last. Changes made by this process are published at once by their handler.

A provider whose requests went to a fallback (:mod:`sidecar.rotation.fallback`)
says so in its status's ``message``, until it answers a request itself again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import attrs

from sidecar.rotation.keypool import KeyPool
from sidecar.rotation.status import ProviderStatus, StatusKind

__all__ = ["StatusFeed"]

log = logging.getLogger(__name__)


def _visible(s: ProviderStatus) -> tuple[object, ...]:
    return (s.kind, s.text, s.index, s.size, s.rotated, s.message)


class StatusFeed:
    def __init__(
        self,
        keypool: KeyPool,
        send: Callable[[ProviderStatus], None],
        *,
        interval: float = 0.5,
        refresh_every: float = 5.0,
    ) -> None:
        self.keypool = keypool
        self.send = send
        self.interval = interval
        self.refresh_every = refresh_every
        self._last: dict[str, tuple[object, ...]] = {}
        self._stamp = keypool.store.stamp()
        self._refreshed = time.monotonic()
        self._fallbacks: dict[str, str] = {}  # provider -> where its last request went

    def fell_back(self, provider: str, note: str | None) -> None:
        """Say in ``provider``'s status where its requests went (None: it answers again)."""
        if note is None and self._fallbacks.pop(provider, None) is None:
            return
        if note is not None:
            self._fallbacks[provider] = note
        self.publish(provider)

    def publish(self, provider: str, *, force: bool = False) -> ProviderStatus:
        """Send ``provider``'s status if it changed (always when ``force``)."""
        status = self.keypool.status(provider)
        self._send_if_new(status, force)
        return status

    def publish_all(self, *, force: bool = False) -> None:
        statuses = self.keypool.status_all(dict.fromkeys([*self.keypool.providers(), *self._last]))
        for status in statuses:
            self._send_if_new(status, force)

    def _send_if_new(self, status: ProviderStatus, force: bool) -> None:
        note = self._fallbacks.get(status.provider)
        if note is not None:
            kind = StatusKind.WARNING if status.kind is StatusKind.NORMAL else status.kind
            message = f"{status.message}; {note}" if status.message else note
            status = attrs.evolve(status, kind=kind, message=message)
        visible = _visible(status)
        if force or self._last.get(status.provider) != visible:
            self._last[status.provider] = visible
            self.send(status)

    def check(self) -> None:
        """One poll: re-derive statuses if the files changed or time has passed."""
        stamp = self.keypool.store.stamp()
        now = time.monotonic()
        if stamp != self._stamp or now - self._refreshed >= self.refresh_every:
            self._stamp, self._refreshed = stamp, now
            self.publish_all()

    async def run(self) -> None:
        changes = self.keypool.store.changes()
        try:
            while True:
                await changes.wait(self.interval, self.refresh_every)
                try:
                    self.check()
                except Exception:  # a bad file must not stop the feed
                    log.exception("status poll failed")
        finally:
            changes.close()
