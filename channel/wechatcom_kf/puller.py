"""Per-account pulling with ``kf/sync_msg`` (invariants 2, 3 and 4).

At most one pull loop per ``open_kfid`` runs at a time: in this process (``_running``) and, with a
shared store, across instances (``store.try_lock``). Callbacks arriving during a pull are coalesced
into one more pull with the newest token; a callback that finds the account locked by another
instance leaves a pull request in the store, which the lock holder takes before it lets go. Each page
is accepted in one durable store write (new items pending + cursor, claimed by this instance), then
handed to ``handle_items``. Claims of items in flight are renewed while they are handled; pending
items nobody holds (a restart, or a dead instance's expired claims) are claimed and dispatched at
``recover()``, by a periodic sweep and before each pull. API reference:
https://developer.work.weixin.qq.com/document/path/94670
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from .errors import KfError, KfSyncTokenInvalid, redact
from .settings import KfSettings
from .store.base import CLAIM_LEASE_SECONDS, StateStore

logger = logging.getLogger(__name__)

MAX_PAGES_PER_PULL = 1000  # 1000 items a page: a million items is far beyond the 3-day window
FIRST_START_SLACK_SECONDS = 60.0  # the waking message was sent shortly before its callback
LOCK_TTL_SECONDS = 60.0
LOCKED_RETRY_SECONDS = 2.0
# About two minutes in all: outlasts a one-minute 45009 block. After that the next callback retries.
MAX_ATTEMPTS = 10
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
CUSTOMER_ORIGIN = 3
RENEW_BATCH = 500  # msgids per renew_claims call: keeps one store call small

Item = dict[str, Any]


class _SyncApi(Protocol):
    def sync_msg(self, open_kfid: str, cursor: str | None, token: str | None, limit: int = 1000) -> Any: ...


class _LockLost(Exception):
    """Another instance took the account's lock while we were pulling."""


class Puller:
    """Schedules and runs pull jobs; ``handle_items`` receives accepted items, oldest first."""

    def __init__(
        self,
        api: _SyncApi,
        store: StateStore,
        handle_items: Callable[[list[Item]], None],
        settings: KfSettings,
        instance_id: str,
        *,
        max_workers: int = 4,
        clock: Callable[[], float] = time.time,
        backoff_base: float = BACKOFF_BASE_SECONDS,
        lock_ttl: float = LOCK_TTL_SECONDS,
        lease_seconds: float = CLAIM_LEASE_SECONDS,
        inflight: Callable[[], Collection[str]] = tuple,
    ) -> None:
        self._api = api
        self._store = store
        self._handle_items = handle_items
        self._skip_history = settings.wechatcom_kf_skip_history_on_first_start
        self._max_age = settings.wechatcom_kf_max_message_age_hours * 3600.0
        self._owner = instance_id
        self._clock = clock
        self._backoff_base = backoff_base
        self._lock_ttl = lock_ttl
        self._lease = lease_seconds
        self._inflight = inflight  # msgids handed on and not finished: their claims are renewed
        self._started_at = clock()
        self._executor = ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="kf-pull")
        self._cond = threading.Condition()
        self._running: set[str] = set()  # accounts with a job queued, running or waiting to retry
        self._next_token: dict[str, str] = {}
        self._first_seen: dict[str, float] = {}
        self._timers: dict[str, threading.Timer] = {}
        self._stopping = False
        self._stop_event = threading.Event()
        self._keeper: threading.Thread | None = None
        self.pulls_started = 0  # for metrics and tests
        self.schedules = 0  # schedule() calls, i.e. accepted callbacks
        self.pull_requests = 0  # callbacks passed on to the instance holding the account's lock

    # --- scheduling -------------------------------------------------------------------------------

    def schedule(self, open_kfid: str, token: str) -> None:
        """Pull ``open_kfid`` soon; coalesced with a running pull (newest token wins). No I/O."""
        with self._cond:
            if self._stopping:
                return
            self.schedules += 1
            self._first_seen.setdefault(open_kfid, self._clock())
            if open_kfid in self._running:
                self._next_token[open_kfid] = token
                return
            self._running.add(open_kfid)
            self._executor.submit(self._job, open_kfid, token, 0)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no pull is queued, running or waiting to retry; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop taking callbacks, cancel retries, let running pulls end their page; True if drained."""
        with self._cond:
            self._stopping = True
            self._stop_event.set()
            for kfid, timer in list(self._timers.items()):
                timer.cancel()
                self._running.discard(kfid)
            self._timers.clear()
            self._cond.notify_all()
        drained = self.wait_idle(timeout)
        self._executor.shutdown(wait=drained, cancel_futures=True)
        if self._keeper is not None:
            self._keeper.join(timeout)
        return drained

    # --- one job ----------------------------------------------------------------------------------

    def _job(self, open_kfid: str, token: str | None, attempt: int) -> None:
        try:
            if not self._lock_or_request(open_kfid, token):
                self._retry_later(open_kfid, token, attempt + 1, LOCKED_RETRY_SECONDS)
                return
            while True:
                self.claim_and_dispatch(open_kfid)
                self._pull(open_kfid, token)
                token = self._next_pull_token(open_kfid)
                if token is None:
                    # Store I/O (unlock) happens outside _cond, so schedule() never waits for it; a
                    # callback that arrives meanwhile is picked up by _end_job.
                    self._unlock(open_kfid)
                    token = self._end_job(open_kfid)
                    if token is None:
                        return
                    if not self._lock_or_request(open_kfid, token):
                        self._retry_later(open_kfid, token, 1, LOCKED_RETRY_SECONDS)
                        return
                attempt = 0
        except Exception as exc:
            self._on_failure(open_kfid, token, attempt, exc)

    def _lock_or_request(self, open_kfid: str, token: str | None) -> bool:
        """Take the account's lock; if another instance holds it, ask it to pull again for us.

        With the lock, a waiting pull request is dropped: the pull about to start covers it.
        """
        if self._store.try_lock(open_kfid, self._owner, self._lock_ttl):
            self._take_pull_request(open_kfid)
            return True
        logger.info("%s is being pulled by another instance; asking it to pull again", open_kfid)
        if token is not None:
            try:
                self._store.request_pull(open_kfid, token)
                self.pull_requests += 1
            except Exception as exc:  # our own retry still covers the callback
                logger.warning("requesting a pull of %s failed: %s", open_kfid, redact(exc))
        return False

    def _next_pull_token(self, open_kfid: str) -> str | None:
        """The token for one more pull: a callback of ours during the pull, or another instance's
        pull request (both are taken: one pull covers them). None when stopping or none arrived."""
        with self._cond:
            local = self._next_token.pop(open_kfid, None)
            if self._stopping:
                return None
        remote = self._take_pull_request(open_kfid)
        return local or remote

    def _take_pull_request(self, open_kfid: str) -> str | None:
        try:
            return self._store.take_pull_request(open_kfid)
        except Exception as exc:  # the request expires; the next callback pulls anyway
            logger.warning("taking the pull request of %s failed: %s", open_kfid, redact(exc))
            return None

    def _end_job(self, open_kfid: str) -> str | None:
        """End this account's job unless a callback arrived since ``_take_token``: then its token."""
        with self._cond:
            token = self._next_token.pop(open_kfid, None)
            if token is not None and not self._stopping:
                return token
            self._running.discard(open_kfid)
            self._cond.notify_all()
            return None

    def _on_failure(self, open_kfid: str, token: str | None, attempt: int, exc: Exception) -> None:
        if isinstance(exc, KfError | _LockLost):
            logger.warning("pull of %s failed (attempt %d): %s", open_kfid, attempt + 1, redact(exc))
        else:
            logger.error("pull of %s failed unexpectedly (attempt %d)", open_kfid, attempt + 1, exc_info=exc)
        if attempt + 1 >= MAX_ATTEMPTS:
            logger.error(
                "giving up pulling %s after %d attempts; the next callback retries", open_kfid, attempt + 1
            )
            self._unlock(open_kfid)
            with self._cond:
                self._next_token.pop(open_kfid, None)
                self._running.discard(open_kfid)
                self._cond.notify_all()
            return
        delay = min(BACKOFF_CAP_SECONDS, self._backoff_base * 2**attempt) * random.uniform(0.5, 1.0)
        self._retry_later(open_kfid, token, attempt + 1, delay)

    def _unlock(self, open_kfid: str) -> None:
        try:
            self._store.unlock(open_kfid, self._owner)
        except Exception as exc:  # the lock expires by itself
            logger.warning("unlocking %s failed: %s", open_kfid, redact(exc))

    def _retry_later(self, open_kfid: str, token: str | None, attempt: int, delay: float) -> None:
        self._unlock(open_kfid)
        with self._cond:
            if self._stopping or attempt >= MAX_ATTEMPTS:
                self._running.discard(open_kfid)
                self._next_token.pop(open_kfid, None)
                self._cond.notify_all()
                return
            # A token that arrived meanwhile is fresher than ours.
            newest = self._next_token.pop(open_kfid, None) or token
            timer = threading.Timer(delay, self._resubmit, (open_kfid, newest, attempt))
            timer.daemon = True
            self._timers[open_kfid] = timer
            timer.start()

    def _resubmit(self, open_kfid: str, token: str | None, attempt: int) -> None:
        with self._cond:
            self._timers.pop(open_kfid, None)
            if self._stopping:
                self._running.discard(open_kfid)
                self._cond.notify_all()
                return
            self._executor.submit(self._job, open_kfid, token, attempt)

    # --- pulling ----------------------------------------------------------------------------------

    def claim_and_dispatch(self, open_kfid: str) -> int:
        """Claim the account's pending items nobody holds (left by a previous run, or by a dead
        instance whose lease expired) and hand them on, oldest first; the number dispatched."""
        items = self._store.claim_pending(open_kfid, self._owner, self._lease)
        if items:
            logger.info("dispatching %d unfinished message(s) of %s", len(items), open_kfid)
            self._handle_items(items)
        return len(items)

    def recover(self) -> int:
        """Claim and dispatch unfinished items of every account (at start, and by the sweep)."""
        count = 0
        try:
            accounts = self._store.pending_accounts()
        except Exception as exc:
            logger.warning("listing accounts with unfinished messages failed: %s", redact(exc))
            return 0
        for open_kfid in accounts:
            if self._stop_event.is_set():
                break
            try:
                count += self.claim_and_dispatch(open_kfid)
            except Exception as exc:  # the next sweep or pull retries
                logger.warning("claiming unfinished messages of %s failed: %s", open_kfid, redact(exc))
        return count

    def renew_inflight(self) -> int:
        """Extend this instance's claims on the items being handled; the number of msgids renewed."""
        msgids = sorted(self._inflight())
        for start in range(0, len(msgids), RENEW_BATCH):
            try:
                self._store.renew_claims(self._owner, msgids[start : start + RENEW_BATCH], self._lease)
            except Exception as exc:  # retried at the next tick, well before the lease ends
                logger.warning("renewing %d claim(s) failed: %s", len(msgids), redact(exc))
                return 0
        return len(msgids)

    def start_maintenance(self) -> None:
        """Start the thread that renews claims (every lease/3) and sweeps for orphans (every lease/2)."""
        with self._cond:
            if self._keeper is not None or self._stopping:
                return
            self._keeper = threading.Thread(target=self._maintain, name="kf-claims", daemon=True)
            self._keeper.start()

    def _maintain(self) -> None:
        renew_every, sweep_every = self._lease / 3, self._lease / 2
        now = time.monotonic()
        next_renew, next_sweep = now + renew_every, now + sweep_every
        while not self._stop_event.wait(max(0.0, min(next_renew, next_sweep) - time.monotonic())):
            now = time.monotonic()
            if now >= next_renew:
                self.renew_inflight()
                next_renew = now + renew_every
            if now >= next_sweep:
                self.recover()
                next_sweep = now + sweep_every

    def _pull(self, open_kfid: str, token: str | None) -> None:
        cursor = self._store.load_cursor(open_kfid)
        first_start = cursor is None
        self.pulls_started += 1
        last_renew = time.monotonic()
        for _ in range(MAX_PAGES_PER_PULL):
            if self._stopping:
                return
            if time.monotonic() - last_renew > self._lock_ttl / 3:
                if not self._store.try_lock(open_kfid, self._owner, self._lock_ttl):
                    raise _LockLost(f"lock of {open_kfid} lost")
                last_renew = time.monotonic()
            page, token = self._sync_page(open_kfid, cursor, token)
            items = [item for item in (page.msg_list or []) if isinstance(item, dict)]
            is_last = not page.has_more
            new, skipped = self._classify(open_kfid, items, first_start, is_last)
            next_cursor = page.next_cursor or cursor
            if new or skipped or next_cursor != cursor:
                accepted = self._store.accept_page(
                    open_kfid, next_cursor, new, skipped, owner=self._owner, lease_seconds=self._lease
                )
                if accepted:
                    self._handle_items(accepted)
            cursor = next_cursor
            if is_last:
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
        self, open_kfid: str, items: list[Item], first_start: bool, is_last: bool
    ) -> tuple[list[Item], list[str]]:
        """Split a page into items to handle and msgids to record as done without handling."""
        now = self._clock()
        if first_start and self._skip_history:
            threshold = self._first_seen.get(open_kfid, self._started_at) - FIRST_START_SLACK_SECONDS
            waking = _waking_message(items) if is_last else None
        else:
            threshold, waking = now - self._max_age, None
        new: list[Item] = []
        skipped: list[str] = []
        for item in items:
            msgid = item.get("msgid")
            if not isinstance(msgid, str) or not msgid:
                logger.warning("sync_msg item without msgid from %s ignored", open_kfid)
                continue
            raw_time = item.get("send_time")
            send_time = float(raw_time) if isinstance(raw_time, int | float) else None
            old = send_time is not None and send_time < threshold
            # Even with clock skew, the message that woke us is answered if WeCom still lets us.
            if old and item is waking and send_time is not None and send_time >= now - self._max_age:
                old = False
            if old:
                skipped.append(msgid)
            else:
                new.append(item)
        if skipped:
            reason = "history before the first start" if first_start and self._skip_history else "too old"
            logger.info("%s: %d item(s) skipped as %s", open_kfid, len(skipped), reason)
        return new, skipped


def _waking_message(items: list[Item]) -> Item | None:
    """The last item of the pull, when it is a customer message (what the callback announced)."""
    if items and items[-1].get("origin") == CUSTOMER_ORIGIN:
        return items[-1]
    return None
