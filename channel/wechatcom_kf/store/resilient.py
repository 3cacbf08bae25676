"""The store as the channel uses it: every call retried where it happens while the store is down.

A Redis restart or a full disk must not lose accepted work or strand claimed messages until their
leases expire: a call that fails with ``StoreUnavailable`` is retried inline with ``retry.STORE``
(capped backoff) until it succeeds or the channel stops; the outage is logged once, and once more when
the store is back. Every call the channel makes is safe to repeat (``accept_page`` gives the same
owner the same items again, the others are idempotent), with two bounded exceptions: a
``claim_pending`` whose answer was lost leaves its items claimed until the lease expires (then the
sweep takes them), and a lost ``take_pull_request`` costs one pull (the next start or callback pulls
anyway).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from ..metrics import NO_METRICS, KfMetrics
from ..oncelog import OutageLog
from ..retry import STORE, RetryPolicy
from .base import CLAIM_LEASE_SECONDS, RawItem, StateStore, StoreUnavailable

logger = logging.getLogger(__name__)
T = TypeVar("T")


class ResilientStore:
    """A :class:`~.base.StateStore` that retries the one it wraps; ``stop()`` ends every retry."""

    def __init__(
        self, store: StateStore, policy: RetryPolicy = STORE, *, metrics: KfMetrics = NO_METRICS
    ) -> None:
        self.backend = store
        self._metrics = metrics
        self._policy = policy
        self._stopped = threading.Event()
        self._outage = OutageLog(logger, "state store")
        self._lock = threading.Lock()
        self._retrying = 0  # calls in a retry loop right now

    def stop(self) -> None:
        """Stop retrying: calls failing from now on raise StoreUnavailable at once."""
        self._stopped.set()

    def _call(self, attempt: Callable[[], T]) -> T:
        failed = False

        def note(exc: Exception, failures: int, delay: float) -> None:
            nonlocal failed
            self._metrics.store_errors.inc()
            if not failed:
                failed = True
                with self._lock:
                    self._retrying += 1
            self._outage.failed(str(exc))

        try:
            result = self._policy.call(
                attempt,
                retry_if=lambda exc: isinstance(exc, StoreUnavailable) and not self._stopped.is_set(),
                stop=self._stopped,
                on_retry=note,
            )
        except StoreUnavailable as exc:
            self._metrics.store_errors.inc()
            self._outage.failed(str(exc))
            raise
        finally:
            if failed:
                with self._lock:
                    self._retrying -= 1
        # The store is back when a call that failed got through, or when nothing is failing any more
        # (a read served from memory while a write keeps failing proves nothing).
        if self._outage.down:
            with self._lock:
                others_failing = self._retrying > 0
            if failed or not others_failing:
                self._outage.succeeded()
        return result

    # --- Inbox ------------------------------------------------------------------------------------

    def load_cursor(self, open_kfid: str) -> str | None:
        return self._call(lambda: self.backend.load_cursor(open_kfid))

    def accept_page(
        self,
        open_kfid: str,
        next_cursor: str | None,
        new_items: Sequence[RawItem],
        skipped_ids: Sequence[str] = (),
        owner: str = "",
        lease_seconds: float = CLAIM_LEASE_SECONDS,
    ) -> list[RawItem]:
        return self._call(
            lambda: self.backend.accept_page(
                open_kfid, next_cursor, new_items, skipped_ids, owner, lease_seconds
            )
        )

    def pending(self, open_kfid: str) -> list[RawItem]:
        return self._call(lambda: self.backend.pending(open_kfid))

    def known_accounts(self) -> list[str]:
        return self._call(self.backend.known_accounts)

    def pending_accounts(self) -> list[str]:
        return self._call(self.backend.pending_accounts)

    def claim_pending(self, open_kfid: str, owner: str, lease_seconds: float) -> list[RawItem]:
        return self._call(lambda: self.backend.claim_pending(open_kfid, owner, lease_seconds))

    def renew_claims(self, open_kfid: str, owner: str, msgids: Sequence[str], lease_seconds: float) -> None:
        self._call(lambda: self.backend.renew_claims(open_kfid, owner, msgids, lease_seconds))

    def finish(self, open_kfid: str, msgid: str) -> None:
        self._call(lambda: self.backend.finish(open_kfid, msgid))

    # --- AccountLocks -------------------------------------------------------------------------------

    def try_lock(self, open_kfid: str, owner: str, ttl_seconds: float) -> bool:
        return self._call(lambda: self.backend.try_lock(open_kfid, owner, ttl_seconds))

    def unlock(self, open_kfid: str, owner: str) -> None:
        self._call(lambda: self.backend.unlock(open_kfid, owner))

    def request_pull(self, open_kfid: str, token: str) -> None:
        self._call(lambda: self.backend.request_pull(open_kfid, token))

    def take_pull_request(self, open_kfid: str) -> str | None:
        return self._call(lambda: self.backend.take_pull_request(open_kfid))

    # --- KeyValues ----------------------------------------------------------------------------------

    def get_value(self, key: str) -> str | None:
        return self._call(lambda: self.backend.get_value(key))

    def set_value(self, key: str, value: str | None, ttl_seconds: float | None) -> None:
        self._call(lambda: self.backend.set_value(key, value, ttl_seconds))

    # --- lifecycle ----------------------------------------------------------------------------------

    def flush(self) -> None:
        self._call(self.backend.flush)

    def maintain(self) -> None:
        self._call(self.backend.maintain)

    def close(self) -> None:
        self.stop()
        self.backend.close()
