"""A customer turn handed to the host: gate, media, context, ``produce`` (on the customer's worker).

This is the last step before the host's own worker asks the bot: the delivery decides whether the bot
may answer at all; the turn's media is downloaded here (so the host's workers never wait for WeCom);
CoW's ``_compose_context`` applies plugins and prefixes; ``produce`` queues the context on the host.
A turn whose reply an earlier run had started is resumed from its saved plan instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bridge.context import Context

from ..logids import who
from ..outbound.deliveries import Deliveries
from ..outbound.delivery import Delivery
from ..store.base import StoreUnavailable
from .turns import Turn

logger = logging.getLogger(__name__)

DELIVERY_KEY = "kf_delivery"  # the context carries its turn's delivery to ``send`` and ``_handle``


class TurnDispatcher:
    def __init__(
        self,
        deliveries: Deliveries,
        compose: Callable[..., Context | None],
        produce: Callable[[Context], None],
        admit: Callable[[Turn, Delivery], dict[str, Any] | None] | None = None,
    ) -> None:
        self._deliveries = deliveries
        self._compose = compose
        self._produce = produce
        self._admit = admit or (lambda _turn, _delivery: {})

    def dispatch(self, turn: Turn) -> None:
        """Runs on the customer's worker."""
        open_kfid, user = turn.key
        try:
            delivery = self._deliveries.open(
                turn.key, turn.msgids, latest_message_time=turn.latest_message_time, recovered=turn.recovered
            )
        except StoreUnavailable:
            logger.warning(
                "channel stopping: the turn of %s stays pending for the next start", who(open_kfid, user)
            )
            return
        if delivery is None:
            return
        if delivery.saved_plan is not None:
            delivery.resume()
            return
        context = self._context(turn, delivery)
        if context is None:
            delivery.close()
            return
        context[DELIVERY_KEY] = delivery
        self._produce(context)

    def _context(self, turn: Turn, delivery: Delivery) -> Context | None:
        """The context for the bot, or None when nobody asks the bot (the desk answered, or failed)."""
        try:
            turn.prepare()  # first: the desk answers a turn of unreadable media itself
            desk_kwargs = self._admit(turn, delivery)
            if desk_kwargs is None:
                return None
            ctype, content, kwargs = turn.to_context_args()
            extra: dict[str, Any] = {"msg": turn.last, "isgroup": False, **kwargs, **desk_kwargs}
            return self._compose(ctype, content, **extra)
        except Exception:
            logger.exception("preparing the turn of %s failed; not answered", who(*turn.key))
            return None
