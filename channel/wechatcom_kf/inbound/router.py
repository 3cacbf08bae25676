"""Route accepted items by what they are, each exactly once (the account's puller calls ``route``).

- customer message (origin 3) -> the customer's worker (``TurnAssembler``), answered there;
- receptionist message (origin 5) -> the takeover flag (the bot stays silent), finished here;
- event (origin 4) -> ``EventHandler`` here, in order with the messages around it; a welcome goes to
  the customer's worker (it is a send, and must precede the answer to the customer's first message);
- anything unusable -> logged and finished.
Field reference: https://developer.work.weixin.qq.com/document/path/94670
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from ..session.budget import BudgetLedger
from ..session.takeover import Takeover
from ..store.base import StoreUnavailable
from ..wechatcom_kf_message import WechatComKfMessage
from ..workers import KeyedWorkers
from .events import EventHandler
from .inflight import InFlight
from .items import CustomerMessage, EnterSession, Event, Item, ServicerMessage, UnusableItem
from .turns import TurnAssembler

logger = logging.getLogger(__name__)


class Router:
    def __init__(
        self,
        *,
        inflight: InFlight,
        takeover: Takeover,
        events: EventHandler,
        ledger: BudgetLedger,
        turns: TurnAssembler,
        customers: KeyedWorkers,
        make_message: Callable[[CustomerMessage], WechatComKfMessage],
    ) -> None:
        self._inflight = inflight
        self._takeover = takeover
        self._events = events
        self._ledger = ledger
        self._turns = turns
        self._customers = customers
        self._make_message = make_message

    def route(self, items: Iterable[Item], *, recovered: bool = False) -> None:
        """Hand on every item not already in flight, oldest first; ``recovered``: claimed back from an
        earlier run or a dead instance (not freshly pulled)."""
        for item in items:
            if not self._inflight.take(item.open_kfid, item.msgid):
                continue  # re-claimed or re-pulled while it is being handled
            try:
                self._route(item, recovered)
            except StoreUnavailable:
                logger.warning("channel stopping: %s stays pending for the next start", item.msgid)
            except Exception:
                logger.exception("routing %s failed; marked finished", item.msgid)
                self._finish(item)

    def _route(self, item: Item, recovered: bool) -> None:
        if isinstance(item, CustomerMessage):
            self._customer(item, recovered)
        elif isinstance(item, ServicerMessage):
            self._takeover.mark_human(item.open_kfid, item.external_userid, "receptionist message")
            self._finish(item)
        elif isinstance(item, EnterSession) and self._events.wants_welcome(item):
            key = (item.open_kfid, item.external_userid)
            if not self._customers.submit(key, lambda: self._welcome(item)):
                logger.info("channel stopping: welcome of %s left pending", item.external_userid)
        elif isinstance(item, Event):
            self._events.handle(item)
            self._finish(item)
        else:
            reason = item.reason if isinstance(item, UnusableItem) else type(item).__name__
            logger.warning(
                "sync_msg item %s of %s cannot be handled (%s); marked finished",
                item.msgid,
                item.open_kfid,
                reason,
            )
            self._finish(item)

    def _customer(self, item: CustomerMessage, recovered: bool) -> None:
        message = self._make_message(item)
        message.recovered = recovered
        self._ledger.note_message(item.key, item.msgid, float(message.create_time or 0))
        logger.debug("customer message %s (%s) from %s", item.msgid, item.msgtype, item.key)
        if not self._turns.submit(message):
            logger.info("channel stopping: %s left pending for the next start", item.msgid)

    def _welcome(self, event: EnterSession) -> None:
        try:
            self._events.send_welcome(event)
        finally:
            self._finish(event)

    def _finish(self, item: Item) -> None:
        self._inflight.finish(item.open_kfid, [item.msgid])
