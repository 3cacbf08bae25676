"""Accepted items that were handed on and are not finished yet (invariant 3).

Every accepted item is taken here once and finished once: durably done in the store, its claim
dropped. A copy read from the store while the item was in flight (a claim or a repeated accept) is
skipped, also when it arrives just after the item was finished: finished msgids are remembered for a
while, longer than any store read can be stale. While items are in flight
their claims are renewed (a maintenance task), so another instance never takes them over.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from ..expiring import ExpiringKeys
from ..metrics import NO_METRICS, KfMetrics
from ..store.base import Inbox, StoreUnavailable

logger = logging.getLogger(__name__)

RENEW_BATCH = 500  # msgids per renew_claims call: keeps one store call small
FINISHED_TTL_SECONDS = 600.0
MAX_FINISHED = 100_000


class InFlight:
    def __init__(
        self, store: Inbox, owner: str, lease_seconds: float, *, metrics: KfMetrics = NO_METRICS
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._owner = owner
        self._lease = lease_seconds
        self._cond = threading.Condition()
        self._items: dict[str, str] = {}  # msgid -> open_kfid
        self._finished = ExpiringKeys(FINISHED_TTL_SECONDS, MAX_FINISHED)

    def take(self, open_kfid: str, msgid: str) -> bool:
        """Start handling ``msgid``; False when it is in flight already."""
        with self._cond:
            if msgid in self._items or msgid in self._finished:
                self._metrics.skipped.labels("duplicate").inc()
                return False
            self._items[msgid] = open_kfid
            self._metrics.accepted.inc()
            return True

    def finish(self, open_kfid: str, msgids: Iterable[str]) -> None:
        """The items are fully handled: done in the store, never handled again.

        The store retries while it is down; if the channel stops meanwhile the items stay pending and
        the next start handles them again (their sends then carry the same msgids).
        """
        for msgid in msgids:
            try:
                self._store.finish(open_kfid, msgid)
                self._metrics.finished.inc()
            except StoreUnavailable:
                logger.warning("channel stopping: %s stays pending for the next start", msgid)
            with self._cond:
                self._finished.add(msgid)
                self._items.pop(msgid, None)
                self._cond.notify_all()

    def count(self) -> int:
        with self._cond:
            return len(self._items)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is in flight; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._items, timeout)

    def renew(self) -> int:
        """Extend this instance's claims on everything in flight; the number of msgids renewed."""
        with self._cond:
            by_account: dict[str, list[str]] = {}
            for msgid, open_kfid in self._items.items():
                by_account.setdefault(open_kfid, []).append(msgid)
        renewed = 0
        for open_kfid, msgids in by_account.items():
            for start in range(0, len(msgids), RENEW_BATCH):
                batch = msgids[start : start + RENEW_BATCH]
                self._store.renew_claims(open_kfid, self._owner, batch, self._lease)
                renewed += len(batch)
        return renewed
