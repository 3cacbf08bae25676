"""The customer-service desk around the bot: who answers a turn, and what the customer sees.

Before the bot (``admit``, on the customer's worker): a hand-off request (keyword or the hand-off
menu item) goes to a human instead of the bot; outside business hours the operator's policy applies
(notice, then bot / hand-off to the queue / notice only); the customer's nickname joins the context.
Around each reply (``on_reply``, on the host's worker): an error reply becomes the operator's
"model unavailable" text and counts toward the hand-off after N failures; a reply carrying the
hand-off marker, or a context a plugin flagged with ``kf_handoff``, hands off once the reply is out.
``[INFO]``/``[ERROR]`` prefixes never reach a customer. Texts the desk puts before the first reply
(off-hours notice, flood notice, AI label) travel in the context as ``kf_preamble``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from bridge.context import Context, ContextType
from bridge.reply import Reply, ReplyType

from ..expiring import ExpiringMap
from ..inbound.turns import Turn
from ..logids import who
from ..outbound.delivery import Delivery
from ..outbound.early_parts import ON_PARTIAL_TEXT
from ..store.base import KeyValues
from .config import DeskConfig
from .customers import CustomerDirectory
from .handoff import QUEUE_STATE, HandOff, Transfer

logger = logging.getLogger(__name__)

HANDOFF_FLAG = "kf_handoff"  # a plugin sets context["kf_handoff"] = True to hand the customer off
PREAMBLE_KEY = "kf_preamble"
CUSTOMER_KEY = "kf_customer"
FAILURE_MEMORY_SECONDS = 3600.0
MAX_TRACKED_CUSTOMERS = 100_000
NEVER_REOPENS_TTL = 7 * 86400.0
_PREFIXES = ("[ERROR]\n", "[INFO]\n", "[ReplyType.ERROR]\n", "[ReplyType.INFO]\n")

CustomerKey = tuple[str, str]


class FrontDesk:
    def __init__(
        self,
        config: DeskConfig,
        *,
        handoff: HandOff,
        store: KeyValues,
        customers: CustomerDirectory | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.texts = config.texts
        self._handoff = handoff
        self._store = store
        self._customers = customers
        self._clock = clock
        self._failures: ExpiringMap[int] = ExpiringMap(FAILURE_MEMORY_SECONDS, MAX_TRACKED_CUSTOMERS)

    # --- before the bot ---------------------------------------------------------------------------

    def admit(self, turn: Turn, delivery: Delivery) -> dict[str, Any] | None:
        """Context kwargs for the bot's turn, or None when the desk answered it (the caller closes).
        Runs after the turn's media was fetched."""
        if all(message.media_failed for message in turn.messages):
            # Nothing a model could read (corrupt, a decompression bomb, not downloadable).
            delivery.send(Reply(ReplyType.TEXT, self.texts.media_unreadable_for(turn.last.msgtype)))
            return None
        if self._asks_for_human(turn):
            self.hand_off(delivery, "customer asked")
            return None
        preamble: list[str] = []
        closed_id = self._closed_period_id()
        if closed_id is not None:
            notice = self.texts.off_hours if self._first_time(turn.key, "off-hours", closed_id) else ""
            policy = self.config.off_hours_policy
            if policy == "handoff":
                self.hand_off(delivery, "outside business hours", to_queue=True, notice=notice)
                return None
            if policy == "notice":
                if notice:
                    delivery.send(Reply(ReplyType.TEXT, notice))
                return None
            preamble += [notice] if notice else []
        if turn.flooded and self.texts.flood:
            preamble.append(self.texts.flood)
        if self.config.ai_disclosure_seconds and self._first_time(turn.key, "ai-label", "1"):
            preamble.append(self.texts.ai_disclosure)
        extra: dict[str, Any] = {PREAMBLE_KEY: preamble} if preamble else {}
        if self.config.thinking_notice_seconds:
            delivery.notice_if_slow(self.config.thinking_notice_seconds, self.texts.thinking)
        if self.config.stream_early_parts:
            extra[ON_PARTIAL_TEXT] = delivery.stream_listener(self._customer_text(preamble))
        return {**extra, **self._who_is_asking(turn)}

    def _customer_text(self, preamble: list[str]) -> Callable[[str], str]:
        """What the customer will get for the bot's text, as ``on_reply`` makes it (for early parts)."""
        marker = self.config.handoff.marker
        head = "\n\n".join(preamble)

        def customer_text(text: str) -> str:
            body = text.replace(marker, "") if marker and marker in text else text
            return f"{head}\n\n{body}" if head else body

        return customer_text

    def _asks_for_human(self, turn: Turn) -> bool:
        menu_id, keywords = self.config.handoff.menu_id, self.config.handoff.keywords
        for message in turn.messages:
            if message.msgtype != "text":
                continue
            if menu_id and message.menu_id == menu_id:
                return True
            if keywords.matches(str(message.content or "")):
                return True
        return False

    def _closed_period_id(self) -> str | None:
        hours = self.config.hours
        if hours.always_open:
            return None
        period = hours.closed_period(self._clock())
        return None if period is None else period.period_id

    def _first_time(self, key: CustomerKey, what: str, period: str) -> bool:
        """True once per customer and period (kept in the store, shared by instances)."""
        name = f"{what}:{key[0]}:{key[1]}"
        if self._store.get_value(name) == period:
            return False
        self._store.set_value(name, period, self._period_ttl(what))
        return True

    def _period_ttl(self, what: str) -> float:
        if what == "ai-label":
            return self.config.ai_disclosure_seconds
        period = self.config.hours.closed_period(self._clock())
        if period is None or period.reopens is None:
            return NEVER_REOPENS_TTL
        return max(60.0, period.reopens.timestamp() - self._clock())

    def _who_is_asking(self, turn: Turn) -> dict[str, Any]:
        if self._customers is None:
            return {}
        info = self._customers.lookup(turn.key[1])
        if info is None:
            return {}
        for message in turn.messages:
            message.from_user_nickname = message.other_user_nickname = info.nickname
        return {CUSTOMER_KEY: info.as_context()}

    # --- around the bot's replies -----------------------------------------------------------------

    def on_reply(self, reply: Reply, context: Context, delivery: Delivery) -> Reply | None:
        """What the customer gets for ``reply`` (None: nothing); may schedule a hand-off."""
        kind = reply.type
        if kind == ReplyType.ERROR:
            return self._failed_answer(delivery)
        self._failures.discard(delivery.key)
        if kind == ReplyType.INFO:
            if context.type == ContextType.VOICE:
                return Reply(ReplyType.TEXT, self.texts.voice_not_configured)
            reply = Reply(ReplyType.TEXT, _without_prefix(str(reply.content or "")))
        elif kind in (ReplyType.TEXT, ReplyType.TEXT_) and self._has_marker(reply):
            self.hand_off(delivery, "the bot asked")
            rest = str(reply.content).replace(self.config.handoff.marker, "").strip()
            reply = Reply(kind, rest) if rest else None  # type: ignore[assignment]
            if reply is None:
                return None
        return self._with_preamble(reply, context, delivery)

    def on_close(self, context: Context, delivery: Delivery) -> None:
        """The host is done with the context: a plugin may have asked for a hand-off."""
        if context.get(HANDOFF_FLAG):
            context[HANDOFF_FLAG] = False
            self.hand_off(delivery, "a plugin asked")

    def _failed_answer(self, delivery: Delivery) -> Reply | None:
        limit = self.config.handoff.after_failures
        failures = (self._failures.get(delivery.key) or 0) + 1
        self._failures.set(delivery.key, failures)
        logger.warning("the bot failed to answer %s (%d in a row)", who(*delivery.key), failures)
        if limit and failures >= limit:
            self._failures.discard(delivery.key)
            self.hand_off(delivery, f"the model failed {failures} time(s) in a row")
            return None
        return Reply(ReplyType.TEXT, self.texts.model_error)

    def _has_marker(self, reply: Reply) -> bool:
        marker = self.config.handoff.marker
        return bool(marker) and isinstance(reply.content, str) and marker in reply.content

    def _with_preamble(self, reply: Reply, context: Context, delivery: Delivery) -> Reply:
        preamble = context.kwargs.pop(PREAMBLE_KEY, None)
        if not preamble:
            return reply
        text = "\n\n".join(preamble)
        if reply.type in (ReplyType.TEXT, ReplyType.TEXT_) and isinstance(reply.content, str):
            return Reply(reply.type, f"{text}\n\n{reply.content}")
        delivery.send(Reply(ReplyType.TEXT, text))
        return reply

    # --- hand-off -----------------------------------------------------------------------------------

    def hand_off(
        self, delivery: Delivery, reason: str, *, to_queue: bool = False, notice: str | None = None
    ) -> None:
        """Hand the customer to a human once this turn's replies are out."""

        def notice_for(transfer: Transfer) -> str:
            if notice is not None:
                return notice
            return self.texts.queue if transfer.state == QUEUE_STATE else self.texts.handoff

        def run(turn_delivery: Delivery) -> None:
            handed = self._handoff.run(
                turn_delivery.key,
                reason,
                to_queue=to_queue,
                notice_for=notice_for,
                tell_failure=lambda: turn_delivery.send(Reply(ReplyType.TEXT, self.texts.handoff_failed)),
            )
            if handed:
                turn_delivery.outcome = "handed off"

        delivery.after_sends(run)


def _without_prefix(text: str) -> str:
    for prefix in _PREFIXES:
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text
