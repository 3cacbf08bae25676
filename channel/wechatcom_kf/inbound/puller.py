"""Per-account pulling with ``kf/sync_msg`` (invariants 2, 3 and 4).

A callback (or the start, or a retry) asks for a pull of one ``open_kfid``; the pull runs as a
coalesced job on the account's keyed worker, so at most one runs per account in this process and
callbacks arriving meanwhile become one more pull with the newest token. Across instances the store's
account lock serializes pulls: a callback that finds the account locked leaves a pull request, which
the lock holder takes before it lets go (and pulls again for it). Each job first claims the account's
pending items nobody holds (a restart, or a dead instance's expired claims) and routes them, then
pages while ``has_more``, each page accepted in one durable store write (new items pending and claimed
by this instance, history skipped as done, the cursor moved) before it is routed.

A failed pull is retried as a delayed job with ``retry.PULL`` (capped backoff, until it succeeds), with
the newest callback token while it is valid (10 minutes), then without. Only a failure no retry can
fix (wrong secret, unknown account) waits for the next callback.
API reference: https://developer.work.weixin.qq.com/document/path/94670
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import KfError, KfSyncTokenInvalid
from ..metrics import NO_METRICS, KfMetrics
from ..oncelog import OutageLog
from ..redaction import redact
from ..retry import PULL, RetryPolicy
from ..store.base import CLAIM_LEASE_SECONDS, StateStore, StoreUnavailable
from ..workers import KeyedWorkers
from .items import CustomerMessage, Item, parse_item
from .router import Router

logger = logging.getLogger(__name__)

MAX_PAGES_PER_PULL = 1000  # 1000 items a page: a million items is far beyond the 3-day window
FIRST_START_SLACK_SECONDS = 60.0  # the waking message was sent shortly before its callback
LOCK_TTL_SECONDS = 60.0
LOCKED_RETRY_SECONDS = 2.0
LOCKED_RETRIES = 30  # about a minute: then the lock holder has surely taken our pull request
TOKEN_VALID_SECONDS = 600.0  # a callback's Token is valid for 10 minutes


class _SyncApi(Protocol):
    def sync_msg(self, open_kfid: str, cursor: str | None, token: str | None, limit: int = 1000) -> Any: ...


@dataclass(frozen=True)
class HistoryPolicy:
    """What a pull answers: ``skip_history`` on a first start, nothing older than ``max_age_seconds``."""

    skip_history: bool
    max_age_seconds: float


class _LockLost(Exception):
    """Another instance took the account's lock while we were pulling."""


@dataclass
class _Account:
    token: str | None = None
    token_at: float = 0.0
    wanted: bool = False  # a pull (not only a claim of pending items) is asked for
    failures: int = 0
    locked_retries: int = 0
    first_seen: float | None = None
    # A first start's pull (no cursor) skips history until its last page is accepted, also when it
    # is interrupted after some pages and retried (their cursor is saved by then).
    first_pull: bool = False


class Puller:
    def __init__(
        self,
        *,
        api: _SyncApi,
        store: StateStore,
        router: Router,
        workers: KeyedWorkers,
        history: HistoryPolicy,
        owner: str,
        lease_seconds: float = CLAIM_LEASE_SECONDS,
        lock_ttl: float = LOCK_TTL_SECONDS,
        policy: RetryPolicy = PULL,
        clock: Callable[[], float] = time.time,
        metrics: KfMetrics = NO_METRICS,
    ) -> None:
        self._api = api
        self._metrics = metrics
        self._store = store
        self._router = router
        self._workers = workers
        self._history = history
        self._owner = owner
        self._lease = lease_seconds
        self._lock_ttl = lock_ttl
        self._policy = policy
        self._clock = clock
        self._started_at = clock()
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}
        self._stopping = threading.Event()
        self._outage = OutageLog(logger, "WeCom sync API")
        self.pulls_started = 0  # for metrics and tests
        self.schedules = 0  # schedule() calls, i.e. accepted callbacks
        self.pull_requests = 0  # callbacks passed on to the instance holding the account's lock

    # --- asking for pulls (no I/O: the callback path calls these) -------------------------------------

    def schedule(self, open_kfid: str, token: str | None) -> None:
        """Pull ``open_kfid`` soon; coalesced with a pull waiting to run (newest token wins)."""
        if self._stopping.is_set():
            return
        now = self._clock()
        with self._lock:
            self.schedules += token is not None
            account = self._accounts.setdefault(open_kfid, _Account())
            if account.first_seen is None:
                account.first_seen = now
            if token:
                account.token, account.token_at = token, now
            account.wanted = True
            account.failures = account.locked_retries = 0
        self._submit(open_kfid)

    def pull_known_accounts(self) -> int:
        """At start: pull every account that has a cursor or pending work, once (a callback answered
        before a crash is not repeated by WeCom). Returns how many."""
        try:
            accounts = self._store.known_accounts()
        except StoreUnavailable:
            return 0
        for open_kfid in accounts:
            self.schedule(open_kfid, None)
        return len(accounts)

    def sweep(self) -> None:
        """Claim and route pending items nobody holds (a dead instance's): a maintenance task."""
        for open_kfid in self._store.pending_accounts():
            self._submit(open_kfid)

    def stop(self) -> None:
        """Take no more pulls; a running one ends after its current page."""
        self._stopping.set()

    def _submit(self, open_kfid: str, delay: float = 0.0) -> None:
        self._workers.submit(open_kfid, lambda: self._job(open_kfid), delay=delay, coalesce=True)

    # --- one job ----------------------------------------------------------------------------------

    def _job(self, open_kfid: str) -> None:
        if self._stopping.is_set():
            return
        with self._lock:
            account = self._accounts.setdefault(open_kfid, _Account())
            wanted, token = account.wanted, self._fresh_token(account)
            account.wanted = False
        try:
            if not self._lock_or_request(open_kfid, token if wanted else None):
                if wanted:
                    self._retry_when_unlocked(open_kfid, account, token)
                return
            try:
                remote = self._store.take_pull_request(open_kfid)  # a pull we run now covers it
                self._claim_and_route(open_kfid)
                if wanted or remote is not None:
                    self._pull(open_kfid, account, token if wanted else remote)
                while (remote := self._store.take_pull_request(open_kfid)) is not None:
                    self._pull(open_kfid, account, remote)
            finally:
                self._unlock(open_kfid)
        except (KfError, StoreUnavailable, _LockLost) as exc:
            self._failed(open_kfid, account, wanted, token, exc)
            return
        except Exception:
            logger.exception("pull of %s failed unexpectedly; the next callback retries", open_kfid)
            self._metrics.pulls.labels("unexpected").inc()
            return
        self._metrics.pulls.labels("ok").inc()
        with self._lock:
            account.failures = 0
        self._outage.succeeded()

    def _fresh_token(self, account: _Account) -> str | None:
        if account.token is not None and self._clock() - account.token_at > TOKEN_VALID_SECONDS:
            account.token = None
        return account.token

    def _lock_or_request(self, open_kfid: str, token: str | None) -> bool:
        """Take the account's lock; if another instance holds it, ask it to pull again for us."""
        if self._store.try_lock(open_kfid, self._owner, self._lock_ttl):
            return True
        if token is not None:
            logger.info("%s is being pulled by another instance; asking it to pull again", open_kfid)
            self._store.request_pull(open_kfid, token)
            self.pull_requests += 1
        return False

    def _retry_when_unlocked(self, open_kfid: str, account: _Account, token: str | None) -> None:
        """Our own retry covers a lock holder that died before it took our request."""
        with self._lock:
            account.locked_retries += 1
            if account.locked_retries > LOCKED_RETRIES or self._stopping.is_set():
                return
            account.wanted = True
            if account.token is None:
                account.token = token
        self._submit(open_kfid, LOCKED_RETRY_SECONDS)

    def _failed(
        self, open_kfid: str, account: _Account, wanted: bool, token: str | None, exc: Exception
    ) -> None:
        retryable = not isinstance(exc, KfError) or exc.retryable
        if self._stopping.is_set():
            return
        if not retryable:
            logger.error("pull of %s failed: %s; the next callback retries", open_kfid, redact(exc))
            self._metrics.pulls.labels("failed").inc()
            return
        self._metrics.pulls.labels("retry").inc()
        with self._lock:
            account.failures += 1
            failures = account.failures
            account.wanted = account.wanted or wanted
            if account.token is None:
                account.token = token
        delay = self._policy.delay(failures)
        if isinstance(exc, KfError):
            self._outage.failed(f"{redact(exc)}; pull of {open_kfid} retried in {delay:.1f} s")
        else:
            logger.info(
                "pull of %s interrupted (%s); retried in %.1f s", open_kfid, type(exc).__name__, delay
            )
        self._submit(open_kfid, delay)

    def _unlock(self, open_kfid: str) -> None:
        with contextlib.suppress(StoreUnavailable):  # the lock expires by itself
            self._store.unlock(open_kfid, self._owner)

    # --- claiming and pulling -----------------------------------------------------------------------

    def _claim_and_route(self, open_kfid: str) -> int:
        """Route the account's pending items nobody else holds, oldest first (those in flight here are
        skipped by the router); the number claimed."""
        raw = self._store.claim_pending(open_kfid, self._owner, self._lease)
        items = _parse_all(open_kfid, raw)
        if items:
            logger.info("claimed %d unfinished message(s) of %s", len(items), open_kfid)
            self._router.route(items, recovered=True)
        return len(items)

    def _pull(self, open_kfid: str, account: _Account, token: str | None) -> None:
        cursor = self._store.load_cursor(open_kfid)
        with self._lock:
            account.first_pull = account.first_pull or cursor is None
            first_start = account.first_pull
        self.pulls_started += 1
        last_renew = time.monotonic()
        for _ in range(MAX_PAGES_PER_PULL):
            if self._stopping.is_set():
                return
            if time.monotonic() - last_renew > self._lock_ttl / 3:
                if not self._store.try_lock(open_kfid, self._owner, self._lock_ttl):
                    raise _LockLost(f"lock of {open_kfid} lost")
                last_renew = time.monotonic()
            page, token = self._sync_page(open_kfid, cursor, token)
            self._metrics.sync_pages.inc()
            items = _parse_all(open_kfid, page.msg_list or [])
            new, skipped = self._classify(open_kfid, items, first_start, is_last=not page.has_more)
            next_cursor = page.next_cursor or cursor
            if new or skipped or next_cursor != cursor:
                accepted = self._store.accept_page(
                    open_kfid, next_cursor, [i.raw for i in new], skipped, self._owner, self._lease
                )
                self._metrics.skipped.labels("duplicate").inc(max(0, len(new) - len(accepted)))
                by_id = {item.msgid: item for item in new}
                self._router.route([by_id[raw["msgid"]] for raw in accepted if raw.get("msgid") in by_id])
            cursor = next_cursor
            if not page.has_more:
                with self._lock:
                    account.first_pull = False
                return
        logger.warning(
            "pull of %s stopped after %d pages; the next callback continues", open_kfid, MAX_PAGES_PER_PULL
        )

    def _sync_page(self, open_kfid: str, cursor: str | None, token: str | None) -> tuple[Any, str | None]:
        try:
            return self._api.sync_msg(open_kfid, cursor, token), token
        except KfSyncTokenInvalid:
            if token is None:
                raise
            logger.info("callback token of %s expired; pulling without it", open_kfid)
            return self._api.sync_msg(open_kfid, cursor, None), None

    def _classify(
        self, open_kfid: str, items: Sequence[Item], first_start: bool, is_last: bool
    ) -> tuple[list[Item], list[str]]:
        """Split a page into items to handle and msgids to record as done without handling."""
        now = self._clock()
        max_age = self._history.max_age_seconds
        if first_start and self._history.skip_history:
            with self._lock:
                seen = self._accounts.get(open_kfid)
                first_seen = seen.first_seen if seen and seen.first_seen is not None else self._started_at
            threshold = first_seen - FIRST_START_SLACK_SECONDS
            waking = items[-1] if is_last and items and isinstance(items[-1], CustomerMessage) else None
        else:
            threshold, waking = now - max_age, None
        new: list[Item] = []
        skipped: list[str] = []
        for item in items:
            old = item.send_time is not None and item.send_time < threshold
            # Even with clock skew, the message that woke us is answered if WeCom still lets us.
            if old and item is waking and item.send_time is not None and item.send_time >= now - max_age:
                old = False
            if old:
                skipped.append(item.msgid)
            else:
                new.append(item)
        if skipped:
            reason = (
                "history before the first start" if first_start and self._history.skip_history else "too old"
            )
            logger.info("%s: %d item(s) skipped as %s", open_kfid, len(skipped), reason)
            self._metrics.skipped.labels("age" if reason == "too old" else "history").inc(len(skipped))
        return new, skipped


def _parse_all(open_kfid: str, raw_items: Sequence[Any]) -> list[Item]:
    items: list[Item] = []
    for raw in raw_items:
        item = parse_item(raw, open_kfid)
        if item is None:
            logger.warning("sync_msg item without msgid ignored")
        else:
            items.append(item)
    return items
