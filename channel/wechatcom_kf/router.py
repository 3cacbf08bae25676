"""Route accepted ``sync_msg`` items by origin, and track that each is finished exactly once.

origin 3 (customer) → ``WechatComKfMessage`` → ``TurnAssembler`` → ``on_turn``;
origin 4 (system event) → ``events.EventHandler``; origin 5 (receptionist) → ``takeover``.
Field reference: https://developer.work.weixin.qq.com/document/path/94670
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from .budget import BudgetLedger
from .events import EventHandler
from .inbound.turns import Turn, TurnAssembler
from .takeover import Takeover
from .wechatcom_kf_message import WechatComKfMessage

logger = logging.getLogger(__name__)

CUSTOMER, EVENT, SERVICER = 3, 4, 5
Item = dict[str, Any]


class _FinishStore(Protocol):
    def finish(self, msgid: str) -> None: ...


class KeyedExecutor:
    """Runs jobs of one key strictly in order, jobs of different keys concurrently (bounded pool)."""

    def __init__(self, max_workers: int, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix=name)
        self._lock = threading.Condition()
        self._queues: dict[Any, deque[Callable[[], None]]] = {}
        self._closed = False

    def submit(self, key: Any, job: Callable[[], None]) -> bool:
        """Queue ``job`` behind the key's earlier jobs; False once shut down."""
        with self._lock:
            if self._closed:
                return False
            queue = self._queues.get(key)
            if queue is not None:
                queue.append(job)
                return True
            self._queues[key] = deque([job])
        self._pool.submit(self._drain, key)
        return True

    def _drain(self, key: Any) -> None:
        while True:
            with self._lock:
                queue = self._queues[key]
                job = queue[0]
            try:
                job()
            except Exception:
                logger.exception("job of %s failed", key)
            with self._lock:
                queue.popleft()
                if not queue:
                    del self._queues[key]
                    self._lock.notify_all()
                    return

    def wait_idle(self, timeout: float) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: not self._queues, timeout)

    def shutdown(self, timeout: float) -> bool:
        """Take no more jobs, wait up to ``timeout`` for the queued ones; True if all ran."""
        with self._lock:
            self._closed = True
        drained = self.wait_idle(timeout)
        self._pool.shutdown(wait=drained, cancel_futures=True)
        return drained


class Router:
    """``handle_items`` is the puller's callback; ``finish_*`` end the life of accepted items."""

    def __init__(
        self,
        *,
        store: _FinishStore,
        events: Callable[[Callable[[str], None]], EventHandler],
        takeover: Takeover,
        ledger: BudgetLedger,
        make_message: Callable[[Item], WechatComKfMessage],
        on_turn: Callable[[Turn], None],
        merge_window_seconds: float,
    ) -> None:
        self._store = store
        self._takeover = takeover
        self._ledger = ledger
        self._make_message = make_message
        self._events = events(self.finish_item)
        self._assembler = TurnAssembler(merge_window_seconds, on_turn)
        self._lock = threading.Condition()
        self._inflight: set[str] = set()  # accepted msgids handed on and not finished yet

    def handle_items(self, items: Iterable[Item]) -> None:
        """Route accepted items in order; items already in flight (re-claimed after their lease lapsed)
        are skipped."""
        for item in items:
            msgid = item.get("msgid")
            if not isinstance(msgid, str) or not msgid:
                continue
            with self._lock:
                if msgid in self._inflight:
                    continue
                self._inflight.add(msgid)
            try:
                self._route(msgid, item)
            except Exception:
                logger.exception("routing %s failed; marked finished", msgid)
                self.finish_item(msgid)

    def _route(self, msgid: str, item: Item) -> None:
        origin = item.get("origin")
        if item.get("msgtype") == "event" or origin == EVENT:
            self._events.handle(item)
        elif origin == SERVICER:
            self._takeover.on_servicer_message(item)
            self.finish_item(msgid)
        elif origin == CUSTOMER:
            self._customer(msgid, item)
        else:
            logger.info("item %s with origin %r ignored", msgid, origin)
            self.finish_item(msgid)

    def _customer(self, msgid: str, item: Item) -> None:
        try:
            message = self._make_message(item)
        except ValueError as exc:
            logger.warning("customer item %s cannot be handled (%s); marked finished", msgid, exc)
            self.finish_item(msgid)
            return
        key = (message.open_kfid, message.external_userid)
        self._ledger.note_message(key, msgid, float(message.create_time or 0))
        logger.debug("customer message %s (%s) from %s", msgid, message.msgtype, key)
        self._assembler.submit(message)

    def finish_item(self, msgid: str) -> None:
        """The item is fully processed: done in the store, never handled again."""
        try:
            self._store.finish(msgid)
        except Exception:
            # It stays pending and is re-dispatched after a restart; a resend is refused as duplicate.
            logger.exception("finishing %s failed", msgid)
        with self._lock:
            self._inflight.discard(msgid)
            self._lock.notify_all()

    def finish_turn(self, key: tuple[str, str], msgids: Iterable[str]) -> None:
        """Every message of a customer turn is answered, or deliberately not."""
        ids = list(msgids)
        self._ledger.answered(key, ids)
        for msgid in ids:
            self.finish_item(msgid)

    def inflight_ids(self) -> list[str]:
        """The msgids handed on and not finished yet: the puller renews their claims."""
        with self._lock:
            return list(self._inflight)

    def inflight_count(self) -> int:
        with self._lock:
            return len(self._inflight)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every accepted item is finished; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._inflight, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Emit turns still waiting for their merge window, stop the assembler."""
        self._assembler.close(timeout)
