"""The deliveries of a channel: which turn the bot may answer, and the one path to ``kf/send_msg``.

``Deliveries.open(key, msgids, ...)`` decides once whether the bot may answer (not recalled, no human
owns the session, the session claimed for the bot) and returns the turn's ``Delivery`` (``delivery.py``),
or None (the turn is finished silently). Each job of a turn is sent here, part by part, recording each
part WeCom accepted. A transient failure (network, 5xx, -1, 45009) keeps the rest of the reply and
retries it with ``retry.SEND`` as a delayed job on the customer's worker until it goes out or WeCom's
48 h send window closes; later jobs of the same customer queue behind it, so they keep their order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

from ..desk.texts import CustomerTexts
from ..errors import KfError, KfSendForbidden, KfSessionStateInvalid, errcode_hint
from ..logids import who
from ..metrics import NO_METRICS, KfMetrics, errcode_label
from ..oncelog import OutageLog
from ..retry import SEND, RetryPolicy
from ..session.budget import BudgetLedger, CustomerKey
from ..session.recalls import Recalls
from ..session.takeover import Takeover
from ..store.base import KeyValues
from ..workers import KeyedWorkers
from .delivery import Delivery
from .msgid import make_msgid
from .planner import OutboundLimits
from .plans import Plans
from .send_job import SendJob
from .sender import Accepted, PartSender, SupportsSend

logger = logging.getLogger(__name__)

SEND_WINDOW_SECONDS = 48 * 3600.0  # WeCom: sends are allowed within 48 h of the customer's message


class Finisher(Protocol):
    """Where a turn's messages are finished (``inbound.inflight.InFlight``)."""

    def finish(self, open_kfid: str, msgids: Iterable[str]) -> None: ...


class Deliveries:
    """Opens deliveries and runs their sends; one per channel."""

    def __init__(
        self,
        *,
        api: SupportsSend,
        store: KeyValues,
        inflight: Finisher,
        takeover: Takeover,
        recalls: Recalls,
        ledger: BudgetLedger,
        workers: KeyedWorkers,
        http_timeout: float,
        limits: OutboundLimits | None = None,
        texts: CustomerTexts | None = None,
        policy: RetryPolicy = SEND,
        clock: Callable[[], float] = time.time,
        metrics: KfMetrics = NO_METRICS,
    ) -> None:
        self.texts = texts or CustomerTexts()
        self.metrics = metrics
        self._sender = PartSender(api, self.texts)
        self.plans = Plans(store)
        self.inflight = inflight
        self.takeover = takeover
        self._recalls = recalls
        self.ledger = ledger
        self._workers = workers
        self.http_timeout = http_timeout
        self.limits = limits or OutboundLimits()
        self._policy = policy
        self.clock = clock
        self._lock = threading.Lock()
        self._backlog: dict[
            CustomerKey, deque[SendJob]
        ] = {}  # per customer: jobs being sent or waiting to retry
        self._outage = OutageLog(logger, "WeCom send API")

    # --- the gate: may the bot answer this turn? ----------------------------------------------------

    def open(
        self, key: CustomerKey, msgids: list[str], *, latest_message_time: float, recovered: bool = False
    ) -> Delivery | None:
        """The delivery of the turn answering ``msgids``, or None when the bot must not answer it (then
        it is finished here). Only a ``recovered`` turn (handled before a crash or by a dead instance)
        can have a saved plan to resume."""
        open_kfid, user = key
        delivery = Delivery(self, key, msgids, latest_message_time)
        if self._recalls.any_recalled(msgids):
            delivery.outcome = "recalled"
        elif not self.takeover.bot_may_answer(open_kfid, user) or not self.takeover.claim_for_bot(
            open_kfid, user
        ):
            delivery.outcome = "human"  # the takeover check logged why
        else:
            delivery.saved_plan = self.plans.load(msgids[-1]) if recovered else None
            return delivery
        delivery.close()
        return None

    # --- sending ------------------------------------------------------------------------------------

    def submit(self, job: SendJob) -> None:
        """Send ``job`` now in this thread, or behind the customer's jobs still being sent."""
        key = job.delivery.key
        with self._lock:
            queue = self._backlog.get(key)
            if queue is not None:
                queue.append(job)  # whoever sends the customer's jobs sends this one next
                return
            self._backlog[key] = deque([job])
        self._send_backlog(key)

    def _send_backlog(self, key: CustomerKey) -> None:
        """Send the customer's jobs in order; after a transient failure, come back later for the rest."""
        while True:
            with self._lock:
                queue = self._backlog.get(key)
                if not queue:
                    self._backlog.pop(key, None)
                    return
                job = queue[0]
            error = self._attempt(job)
            if error is not None and self._within_window(job):
                job.failures += 1
                delay = self._policy.delay(job.failures)
                self._outage.failed(
                    f"{type(error).__name__}; reply to {key[0]}/{key[1]} resent in {delay:.1f} s"
                )
                if not self._workers.submit(key, lambda: self._send_backlog(key), delay=delay):
                    logger.info("channel stopping: the reply to %s is sent after the next start", who(*key))
                return
            if error is not None:
                logger.warning("reply to %s not sent: WeCom's 48 h send window has closed", who(*key))
                job.delivery.outcome = "send window closed"
            with self._lock:
                queue.popleft()
            job.done = True
            job.delivery.job_done()

    def schedule(self, key: CustomerKey, job: Callable[[], None], delay: float) -> None:
        """Run ``job`` on the customer's worker after ``delay`` seconds (dropped at stop)."""
        self._workers.submit(key, job, delay=delay)

    def _within_window(self, job: SendJob) -> bool:
        latest = self.ledger.latest_message_time(job.delivery.key) or job.delivery.latest_message_time
        return self.clock() < latest + SEND_WINDOW_SECONDS

    def _attempt(self, job: SendJob) -> KfError | None:
        """Send the parts not accepted yet, in order; the transient error that interrupted it, if any."""
        key = job.delivery.key
        sent_before = len(job.accepted)
        for index, part in enumerate(job.parts):
            if index in job.accepted:
                continue
            try:
                accepted = self._sender.send(
                    part,
                    touser=key[1],
                    open_kfid=key[0],
                    msgid=make_msgid(job.base, job.first + index),
                    notice_sent=job.notice_sent,
                )
            except KfError as err:
                if err.retryable:
                    self.metrics.sends.labels("retry", errcode_label(err.errcode)).inc()
                    return err
                self._refused(job, index, err)
                return None
            self._outage.succeeded()
            self._record(job, index, accepted)
        logger.debug(
            "sent %d part(s) to %s/%s (%d accepted before, %d already sent)",
            len(job.accepted) - sent_before,
            key[0],
            key[1],
            sent_before,
            job.duplicates,
        )
        return None

    def _record(self, job: SendJob, index: int, accepted: Accepted) -> None:
        self.metrics.sends.labels(accepted.value, "0").inc()
        job.accepted.add(index)
        if accepted is Accepted.NOTICE:
            job.notice_sent = True
        if accepted is Accepted.DUPLICATE:
            job.duplicates += 1
        if accepted is not Accepted.SKIPPED:
            self.ledger.consume(job.delivery.key, 1)  # a duplicate too: WeCom counted the original
            job.delivery.count_send()
        if job.saved:
            job.delivery.part_accepted(job.first + index)

    def _refused(self, job: SendJob, index: int, err: KfError) -> None:
        """WeCom refused a part for good: the rest of this reply is not sent."""
        open_kfid, user = job.delivery.key
        self.metrics.sends.labels("refused", errcode_label(err.errcode)).inc()
        if isinstance(err, KfSessionStateInvalid):
            job.delivery.outcome = "human"
            self.takeover.mark_human(open_kfid, user, "send refused with 95018")
            return
        job.delivery.outcome = f"refused {err.errcode}"
        reason = errcode_hint(err.errcode) or str(err)
        level = logging.INFO if isinstance(err, KfSendForbidden) else logging.WARNING
        logger.log(
            level,
            "part %d/%d of the reply to %s refused (errcode %s: %s); the rest is not sent",
            index + 1,
            len(job.parts),
            who(open_kfid, user),
            err.errcode,
            reason,
        )
