"""Hand a customer to a human (转人工): ``kf/service_state/trans`` and the notice that goes with it.

https://developer.work.weixin.qq.com/document/path/94669 (trans), /94645 (servicer/list), /95122
(send_msg_on_event). The target is a receptionist who is receiving (状态 接待中), chosen in turn per
account (round robin in this instance), or the WeCom queue (待接入池, state 2) when nobody is
receiving, when the operator chose the queue, or when the chosen receptionist is refused (95014,
95019). ``trans`` returns a ``msg_code`` on the first change to 2 or 3: the notice goes out with it
(``send_msg_on_event``; not counted in the 5-message budget). From then on the takeover keeps the bot
silent until the session is back with the bot. A hand-off WeCom refuses is logged with its meaning,
the customer is told, and the bot goes on answering.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..api import Servicer
from ..errors import KfError, errcode_hint
from ..logids import who
from ..metrics import NO_METRICS, KfMetrics
from ..outbound.msgid import notice_msgid
from ..session.takeover import Takeover

logger = logging.getLogger(__name__)

QUEUE_STATE = 2  # 待接入池排队中
RECEPTIONIST_STATE = 3  # 由人工接待
RECEPTIONIST_REFUSED = frozenset({95014, 95019})  # not a (activated) receptionist / stopped receiving

CustomerKey = tuple[str, str]


class HandoffApi(Protocol):
    def list_servicers(self, open_kfid: str) -> list[Servicer]: ...
    def trans_service_state(
        self, open_kfid: str, external_userid: str, service_state: int, servicer_userid: str | None = None
    ) -> str | None: ...
    def send_msg_on_event(self, code: str, msgtype: str, body: dict[str, Any], msgid: str | None) -> str: ...


@dataclass(frozen=True)
class Transfer:
    """Where a session went: state 3 with ``servicer``, or the queue (state 2)."""

    state: int
    servicer: str | None
    msg_code: str | None


class HandoffRefused(Exception):
    """No hand-off is possible now; ``reason`` is for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HandOff:
    def __init__(
        self, api: HandoffApi, takeover: Takeover, *, queue_only: bool, metrics: KfMetrics = NO_METRICS
    ) -> None:
        self._api = api
        self._metrics = metrics
        self._takeover = takeover
        self._queue_only = queue_only
        self._turns: dict[str, itertools.count[int]] = {}
        self._lock = threading.Lock()

    def run(
        self,
        key: CustomerKey,
        reason: str,
        *,
        to_queue: bool,
        notice_for: Callable[[Transfer], str],
        tell_failure: Callable[[], None],
    ) -> bool:
        """Transfer the session; True when a human (or the queue) has it. Never raises."""
        open_kfid, user = key
        try:
            transfer = self._transfer(open_kfid, user, to_queue or self._queue_only)
        except HandoffRefused as refused:
            logger.warning(
                "hand-off of %s (%s) not possible: %s", who(open_kfid, user), reason, refused.reason
            )
            self._metrics.handoffs.labels("refused").inc()
            tell_failure()
            return False
        where = f"receptionist {transfer.servicer}" if transfer.servicer else "the queue"
        logger.info("handed %s off to %s (%s)", who(open_kfid, user), where, reason)
        self._metrics.handoffs.labels("receptionist" if transfer.servicer else "queue").inc()
        self._takeover.mark_human(open_kfid, user, f"handed off ({reason})")
        self._notify(key, transfer, notice_for(transfer))
        return True

    def _transfer(self, open_kfid: str, user: str, to_queue: bool) -> Transfer:
        servicer = None if to_queue else self._pick_receptionist(open_kfid)
        if servicer is not None:
            try:
                code = self._api.trans_service_state(open_kfid, user, RECEPTIONIST_STATE, servicer)
                return Transfer(RECEPTIONIST_STATE, servicer, code)
            except KfError as err:
                if err.errcode not in RECEPTIONIST_REFUSED:
                    raise HandoffRefused(_meaning(err)) from None
                logger.info("receptionist %s refused (%s); trying the queue", servicer, _meaning(err))
        try:
            code = self._api.trans_service_state(open_kfid, user, QUEUE_STATE)
        except KfError as err:
            raise HandoffRefused(_meaning(err)) from None
        return Transfer(QUEUE_STATE, None, code)

    def _pick_receptionist(self, open_kfid: str) -> str | None:
        """A receiving receptionist in turn; None when none is receiving (the queue waits for them)."""
        try:
            servicers = self._api.list_servicers(open_kfid)
        except KfError as err:
            logger.warning("receptionists of %s unknown (%s); using the queue", open_kfid, _meaning(err))
            return None
        if not servicers:
            raise HandoffRefused(
                "no receptionist is configured on this KF account (admin console: 微信客服 → 接待人员)"
            )
        receiving = sorted(s.userid for s in servicers if s.receiving)
        if not receiving:
            return None
        with self._lock:
            turn = next(self._turns.setdefault(open_kfid, itertools.count()))
        return receiving[turn % len(receiving)]

    def _notify(self, key: CustomerKey, transfer: Transfer, text: str) -> None:
        if not text:
            return
        if not transfer.msg_code:
            logger.info("no msg_code from the transfer of %s: the notice is not sent", who(*key))
            return
        try:
            self._api.send_msg_on_event(
                transfer.msg_code, "text", {"content": text}, msgid=notice_msgid(transfer.msg_code)
            )
        except KfError as err:
            logger.warning("hand-off notice to %s not sent (%s)", who(*key), _meaning(err))


def _meaning(err: KfError) -> str:
    hint = errcode_hint(err.errcode)
    return f"errcode {err.errcode}: {hint}" if hint else f"{type(err).__name__} (errcode {err.errcode})"
