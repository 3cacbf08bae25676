"""Per-customer send budget: WeCom allows 5 sends after each customer message (invariant 5).

WeCom counts the sends made since the customer's *latest* message (95001 beyond 5, see
https://developer.work.weixin.qq.com/document/path/94677). Several of a customer's messages can be
waiting for answers at once; they share that pool, so an earlier turn must leave at least one send
for every later turn still waiting (messages the merge window or the flood guard holds together
count as the one turn they will be: ``hold_together``). The ledger is in memory: after a restart it
is rebuilt from the messages pulled again, and sends refused as duplicates still count (WeCom
counted the original).

Memory stays flat (invariant 9): a customer's entry expires 48 h after its last activity (WeCom's send
window; ``ExpiringRecords``), the number of entries is capped (least recently active first), and an entry
keeps only the send times that still count, i.e. those since about the customer's latest message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..expiring import ExpiringRecords

logger = logging.getLogger(__name__)

SENDS_PER_MESSAGE = 5
WINDOW_SECONDS = 48 * 3600
MAX_CUSTOMERS = 100_000
MAX_SEND_TIMES = 64  # per customer; more than 5 per message are never allowed anyway
MAX_WAITING = 256  # per customer: unanswered msgids remembered

CustomerKey = tuple[str, str]  # (open_kfid, external_userid)


@dataclass(slots=True)
class _Customer:
    """Kept for every customer of the last 48 h, so it stays small: an answered customer holds a float
    and a short tuple (the empty tuple and None cost nothing of their own)."""

    latest_message_time: float = 0.0
    expires_at: float = 0.0  # set by the ledger's ExpiringRecords
    send_times: tuple[float, ...] = ()  # only those that can still count
    # unanswered msgid -> the turn it will be answered in (its own msgid until held with others)
    waiting: dict[str, str] | None = None


class BudgetLedger:
    """Thread-safe ledger of sends per customer; bounded in customers and entries."""

    def __init__(
        self,
        per_message: int = SENDS_PER_MESSAGE,
        max_customers: int = MAX_CUSTOMERS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._per_message = per_message
        self._clock = clock
        self._lock = threading.Lock()
        # An entry expires 48 h after the customer's last message or send (WeCom's send window).
        self._customers: ExpiringRecords[_Customer] = ExpiringRecords(WINDOW_SECONDS, max_customers, clock)

    def note_message(self, key: CustomerKey, msgid: str, send_time: float) -> None:
        """Record a pulled customer message: it re-opens the allowance and waits for an answer."""
        with self._lock:
            customer = self._touch(key)
            customer.latest_message_time = max(customer.latest_message_time, float(send_time))
            # Sends before the second of the latest message no longer count (see _sends_since_latest).
            since = int(customer.latest_message_time)
            customer.send_times = tuple(t for t in customer.send_times if t >= since)
            waiting = customer.waiting = customer.waiting or {}
            waiting.setdefault(msgid, msgid)
            while len(waiting) > MAX_WAITING:
                del waiting[next(iter(waiting))]

    def latest_message_time(self, key: CustomerKey) -> float | None:
        """Send time of the customer's latest message seen (the 48 h send window starts there)."""
        customer = self._customers.get(key)
        return None if customer is None else customer.latest_message_time

    def allowance_for(
        self, key: CustomerKey, msgids: Iterable[str], own_sends: int = 0, *, first: bool = True
    ) -> int:
        """Sends the turn answering ``msgids`` may use now (0 = none left). ``own_sends`` of the
        recorded sends are the turn's own (certainly after its message, whenever they were made);
        ``first``: nothing of the turn was sent or planned yet (it always gets its one answer)."""
        turn = set(msgids)
        with self._lock:
            customer = self._customers.get(key)
            if customer is None:
                return self._per_message
            certain, maybe = self._sends_since_latest(customer)
            own = min(max(0, own_sends), maybe)
            certain, maybe = certain + own, maybe - own
            turn_of = customer.waiting or {}
            waiting = list(turn_of)
            positions = [i for i, mid in enumerate(waiting) if mid in turn]
            last = max(positions) if positions else -1
            # Each later turn still waiting will need at least one send of the same pool.
            later_turns = {turn_of[mid] for mid in waiting[last + 1 :] if mid not in turn}
            later = len(later_turns) if positions else 0
            room = self._per_message - certain - later
            if room < 1:
                logger.warning(
                    "no sends left for %s: %d used since the latest message, %d later turn(s) waiting",
                    key,
                    certain,
                    later,
                )
                return 0
            # Sends in the same second as the message may or may not count at WeCom: they limit
            # extra parts, never the one send that answers the message (the turn's first).
            return max(1 if first else 0, room - maybe)

    def hold_together(self, key: CustomerKey, msgids: Iterable[str]) -> None:
        """These waiting messages will be answered as one turn (held by the merge window or the flood
        guard): they need one send of the pool between them, not one each."""
        ids = list(msgids)
        if not ids:
            return
        with self._lock:
            customer = self._customers.get(key)
            if customer is None or customer.waiting is None:
                return
            for msgid in ids:
                if msgid in customer.waiting:
                    customer.waiting[msgid] = ids[0]

    def consume(self, key: CustomerKey, count: int) -> None:
        """Record ``count`` sends (including ones refused as duplicates) made just now."""
        if count <= 0:
            return
        now = self._clock()
        with self._lock:
            customer = self._touch(key)
            customer.send_times = (*customer.send_times, *([now] * count))[-MAX_SEND_TIMES:]

    def answered(self, key: CustomerKey, msgids: Iterable[str]) -> None:
        """The turn answering ``msgids`` is over (sent, dropped or silent)."""
        with self._lock:
            customer = self._customers.get(key)
            if customer is None or customer.waiting is None:
                return
            for msgid in msgids:
                customer.waiting.pop(msgid, None)
            if not customer.waiting:
                customer.waiting = None  # an emptied dict keeps its table

    def _sends_since_latest(self, customer: _Customer) -> tuple[int, int]:
        """(sends certainly after the latest message, sends in the same second as it)."""
        since = int(customer.latest_message_time)  # send_time has 1 s resolution
        certain = sum(1 for t in customer.send_times if t >= since + 1)
        maybe = sum(1 for t in customer.send_times if since <= t < since + 1)
        return certain, maybe

    def _touch(self, key: CustomerKey) -> _Customer:
        """The entry of ``key``, created if needed; its 48 h start again now."""
        customer = self._customers.get(key) or _Customer()
        self._customers.set(key, customer)
        return customer

    def __len__(self) -> int:
        return len(self._customers)
