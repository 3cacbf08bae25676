"""The delivery of one customer turn's answer — the one path every reply takes to ``kf/send_msg``.

``Deliveries.open(key, msgids, ...)`` decides once whether the bot may answer (not recalled, no human owns the
session, the session claimed for the bot) and returns the turn's ``Delivery``, or None (the turn is
finished silently). The host then calls ``Delivery.send(reply)`` for each reply (CoW may send a text and
then its images in separate calls) and ``Delivery.close()`` when it is done with the turn.

Each ``send`` plans the reply within the customer's budget (``planner.py``), saves a multi-part text
plan (``plans.py``) and sends the parts in order, recording each part WeCom accepted. A transient
failure (network, 5xx, -1, 45009) keeps the rest of the reply and retries it with ``retry.SEND`` as a
delayed job on the customer's worker until it goes out or WeCom's 48 h send window closes; later
replies to the same customer queue behind it, so they keep their order. The turn is finished (done
in the store) only when nothing of it is left to send, or when WeCom refused it for good.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from bridge.reply import Reply

from ..desk.texts import CustomerTexts
from ..errors import KfError, KfSendForbidden, KfSessionStateInvalid, errcode_hint
from ..logids import short_user, who
from ..metrics import NO_METRICS, KfMetrics, errcode_label
from ..oncelog import OutageLog
from ..retry import SEND, RetryPolicy
from ..session.budget import BudgetLedger, CustomerKey
from ..session.recalls import Recalls
from ..session.takeover import Takeover
from ..store.base import KeyValues
from ..workers import KeyedWorkers
from .msgid import make_msgid
from .planner import OutboundLimits, OutboundPart, plan_reply, text_part
from .plans import Plans, SavedPlan, savable_texts
from .sender import Accepted, PartSender, SupportsSend

logger = logging.getLogger(__name__)

SEND_WINDOW_SECONDS = 48 * 3600.0  # WeCom: sends are allowed within 48 h of the customer's message


class Finisher(Protocol):
    """Where a turn's messages are finished (``inbound.inflight.InFlight``)."""

    def finish(self, open_kfid: str, msgids: Iterable[str]) -> None: ...


@dataclass(eq=False)
class _Job:
    """One ``send`` of a turn: its planned parts, their msgid base, the parts WeCom accepted."""

    delivery: Delivery
    base: str
    parts: list[OutboundPart]
    accepted: set[int] = field(default_factory=set)
    saved: bool = False  # a plan of it is in the store
    failures: int = 0
    notice_sent: bool = False
    duplicates: int = 0
    done: bool = False  # sent, refused for good, or out of WeCom's window

    @property
    def unsent(self) -> int:
        return 0 if self.done else len(self.parts) - len(self.accepted)


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
            CustomerKey, deque[_Job]
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

    def submit(self, job: _Job) -> None:
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

    def _within_window(self, job: _Job) -> bool:
        latest = self.ledger.latest_message_time(job.delivery.key) or job.delivery.latest_message_time
        return self.clock() < latest + SEND_WINDOW_SECONDS

    def _attempt(self, job: _Job) -> KfError | None:
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
                    msgid=make_msgid(job.base, index),
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

    def _record(self, job: _Job, index: int, accepted: Accepted) -> None:
        self.metrics.sends.labels(accepted.value, "0").inc()
        job.accepted.add(index)
        if accepted is Accepted.NOTICE:
            job.notice_sent = True
        if accepted is Accepted.DUPLICATE:
            job.duplicates += 1
        if accepted is not Accepted.SKIPPED:
            self.ledger.consume(job.delivery.key, 1)  # a duplicate too: WeCom counted the original
            job.delivery.count_send()
        if job.saved and len(job.accepted) < len(job.parts):
            texts = [str(p.body.get("content", "")) for p in job.parts]
            self.plans.save(job.base, SavedPlan(texts, set(job.accepted)))

    def _refused(self, job: _Job, index: int, err: KfError) -> None:
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


class Delivery:
    """One turn's answer: ``send`` each reply, then ``close``; finished once nothing is left to send."""

    def __init__(
        self, service: Deliveries, key: CustomerKey, msgids: list[str], latest_message_time: float
    ) -> None:
        self._service = service
        self.key = key
        self.msgids = msgids
        self.base = msgids[-1]
        self.latest_message_time = latest_message_time
        self.saved_plan: SavedPlan | None = None  # an interrupted reply of an earlier run
        self._lock = threading.Lock()
        self._sends = 0
        self._open_jobs = 0
        self._closed = False
        self._finished = False
        self._plan_bases: list[str] = []
        self._actions: list[Callable[[Delivery], None]] = []
        self._jobs: list[_Job] = []
        self.own_sends = 0  # sends of this turn WeCom counted (the budget is shared across sends)
        self.produced_at: float | None = None  # time.monotonic() when handed to the host (bot latency)
        self.last_sent_at = 0.0  # the clock when WeCom last accepted a part of it (reply latency)
        self.outcome: str | None = None  # why it ended otherwise than answered (the turn's log line)

    def send(self, reply: Reply) -> None:
        """Plan ``reply`` within the budget and send it (or queue it behind this customer's retries)."""
        with self._lock:
            if self._finished:
                logger.warning("a reply to %s after its turn was finished is not sent", who(*self.key))
                return
            number = self._sends
            self._sends += 1
            self._open_jobs += 1
        service = self._service
        if number == 0 and self.produced_at is not None:
            service.metrics.bot_latency.observe(time.monotonic() - self.produced_at)
        allowance = self._allowance()
        if allowance < 1:
            service.metrics.budget_exhausted.inc()
            self.outcome = self.outcome or ("budget exhausted" if not self.own_sends else None)
        parts = plan_reply(
            reply, allowance, http_timeout=service.http_timeout, limits=service.limits, texts=service.texts
        )
        if not parts:
            self.job_done()
            return
        # A plugin may send more than once per turn: later sends get their own msgid range. Only the
        # first is resumable (a re-handled turn looks its plan up by the turn's last msgid).
        job = _Job(self, self.base if number == 0 else f"{self.base}/{number}", parts)
        with self._lock:
            self._jobs.append(job)
        texts = savable_texts(parts) if number == 0 else None
        if texts is not None and service.plans.save(job.base, SavedPlan(texts)):
            job.saved = True
            self._plan_bases.append(job.base)
        service.submit(job)

    def _allowance(self) -> int:
        """What a new reply of this turn may use: the ledger's room minus what earlier replies of the
        turn still have to send (CoW sends a reply's text, media and extra replies separately)."""
        with self._lock:
            pending = sum(job.unsent for job in self._jobs)
            own = self.own_sends
        ledger = self._service.ledger
        allowance = ledger.allowance_for(self.key, self.msgids, own, first=own + pending == 0)
        return max(0, allowance - pending)

    def notice_if_slow(self, after: float, text: str) -> None:
        """Send ``text`` once if the bot has not replied within ``after`` seconds — only while a send is
        left for the answer itself. It has its own msgid range: the answer keeps the turn's first one."""

        def notice() -> None:
            room = self._allowance()
            job = _Job(self, f"{self.base}/wait", [text_part(text)])
            with self._lock:
                if self._sends or self._closed or self._finished or room < 2:
                    return  # the answer came first, there will be none, or it needs every send left
                self._open_jobs += 1
                self._jobs.append(job)  # from here on the answer's allowance counts it
            logger.debug("the bot is slow for %s: sending the waiting notice", who(*self.key))
            self._service.submit(job)

        self._service.schedule(self.key, notice, after)

    def count_send(self) -> None:
        with self._lock:
            self.own_sends += 1
            self.last_sent_at = self._service.clock()

    def resume(self) -> None:
        """Send what an earlier run planned and WeCom did not accept, without asking the bot again."""
        plan = self.saved_plan
        assert plan is not None
        service = self._service
        with self._lock:
            self._sends = 1
            self._open_jobs += 1
        self._plan_bases.append(self.base)
        service.ledger.consume(self.key, len(plan.accepted))  # WeCom counted them before the restart
        remaining = [i for i in range(len(plan.texts)) if i not in plan.accepted]
        allowance = service.ledger.allowance_for(self.key, self.msgids)
        keep = set(remaining[:allowance])
        logger.info(
            "resuming an interrupted %d-part reply to %s: %d part(s) left",
            len(plan.texts),
            who(*self.key),
            len(keep),
        )
        parts = [text_part(text) for text in plan.texts]
        accepted = set(range(len(parts))) - keep  # what is not sent now counts as done
        service.submit(_Job(self, self.base, parts, accepted=accepted, saved=True))
        self.close()

    def after_sends(self, action: Callable[[Delivery], None]) -> None:
        """Run ``action`` once the host is done and every reply went out, before the turn is finished
        (a hand-off: it may ``send`` a notice of its own)."""
        with self._lock:
            self._actions.append(action)

    def close(self) -> None:
        """The host is done with the turn: finish it unless a reply is still being sent."""
        with self._lock:
            self._closed = True
        self._maybe_finish()

    def job_done(self) -> None:
        with self._lock:
            self._open_jobs -= 1
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        with self._lock:
            if not self._closed or self._open_jobs or self._finished:
                return
            action = self._actions.pop(0) if self._actions else None
            if action is None:
                self._finished = True
            else:
                self._open_jobs += 1  # the action holds the turn open
        if action is None:
            self._finish()
            return
        try:
            action(self)
        except Exception:
            logger.exception("an action after the reply to %s failed", who(*self.key))
        finally:
            self.job_done()

    def _finish(self) -> None:
        service = self._service
        service.ledger.answered(self.key, self.msgids)
        latency = None
        if self.last_sent_at and self.latest_message_time > 0:
            latency = max(0.0, self.last_sent_at - self.latest_message_time)
            service.metrics.reply_latency.observe(latency)
        service.inflight.finish(self.key[0], self.msgids)
        self._log_finished(latency)
        # After finishing: a crash in between leaves only a stale plan, never a new answer.
        for base in self._plan_bases:
            service.plans.drop(base)

    def _log_finished(self, latency: float | None) -> None:
        """The turn's one INFO line: who, which messages, how many parts, how fast, how it ended.
        No content: that is for DEBUG."""
        outcome = self.outcome or ("answered" if self.own_sends else "no reply")
        logger.info(
            "turn finished: account=%s customer=%s msgids=%s parts=%d latency=%s outcome=%s",
            self.key[0],
            short_user(self.key[1]),
            ",".join(self.msgids),
            self.own_sends,
            "-" if latency is None else f"{latency:.1f}s",
            outcome.replace(" ", "_"),
        )
