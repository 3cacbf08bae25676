"""One customer turn's answer: ``send`` each reply, then ``close``; finished once nothing is left.

The host calls ``Delivery.send(reply)`` for each reply (CoW may send a text and then its images in
separate calls) and ``Delivery.close()`` when it is done with the turn. Each ``send`` plans the reply
within the customer's budget (``planner.py``), saves a multi-part text plan (``plans.py``) and hands it
to ``Deliveries`` (``deliveries.py``) to send. A streamed answer's first parts may go out before the
bot has finished (``early_parts.py``). The turn is finished (done in the store) only when nothing of
it is left to send, or when WeCom refused it for good.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from bridge.reply import Reply

from ..logids import short_user, who
from ..session.budget import CustomerKey
from .early_parts import EarlyParts
from .planner import OutboundPart, plan_reply, text_part
from .plans import SavedPlan, savable_texts
from .send_job import SendJob

if TYPE_CHECKING:
    from .deliveries import Deliveries

logger = logging.getLogger(__name__)


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
        self._jobs: list[SendJob] = []
        self.own_sends = 0  # sends of this turn WeCom counted (the budget is shared across sends)
        self.produced_at: float | None = None  # time.monotonic() when handed to the host (bot latency)
        self.last_sent_at = 0.0  # the clock when WeCom last accepted a part of it (reply latency)
        self.outcome: str | None = None  # why it ended otherwise than answered (the turn's log line)
        self._plan: SavedPlan | None = None  # the first reply's texts and what WeCom accepted of them
        self.early: EarlyParts | None = None  # a streamed answer's parts sent before it ended
        self._streaming = False

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
        first = 0
        if number == 0 and self.early is not None and self.early.sent:
            parts, first = self._rest_of_streamed(reply, parts), len(self.early.sent)
        if not parts:
            self.job_done()
            return
        # A plugin may send more than once per turn: later sends get their own msgid range. Only the
        # first is resumable (a re-handled turn looks its plan up by the turn's last msgid).
        job = SendJob(self, self.base if number == 0 else f"{self.base}/{number}", parts, first=first)
        with self._lock:
            self._jobs.append(job)
        texts = savable_texts(parts, first) if number == 0 else None
        if texts is not None:
            job.saved = self._save_plan(self._plan_texts() + texts)
        service.submit(job)

    def _rest_of_streamed(self, reply: Reply, planned: list[OutboundPart]) -> list[OutboundPart]:
        """The parts after those sent early: the answer's own plan, cut as the early ones were."""
        early = self.early
        assert early is not None and early.budget is not None
        service = self._service
        whole = plan_reply(
            reply,
            early.budget,
            http_timeout=service.http_timeout,
            limits=service.limits,
            texts=service.texts,
        )
        if [str(p.body.get("content", "")) for p in whole[: len(early.sent)]] == early.sent:
            return whole[len(early.sent) :]
        if len(whole) <= len(early.sent) or any(p.msgtype != "text" for p in whole):
            # Not the answer it streamed (an error text, a rewrite): this reply on its own.
            logger.info("the final reply to %s is not the answer it streamed", who(*self.key))
            return planned
        # The same answer, cut or converted a little differently at the end (it streamed something
        # Markdown turned into something else later): the rest, never what was sent again.
        logger.info("the final answer to %s differs slightly from its streamed start", who(*self.key))
        return whole[len(early.sent) :]

    # --- the reply plan (resumable after a crash) ----------------------------------------------------

    def _plan_texts(self) -> list[str]:
        with self._lock:
            return list(self._plan.texts) if self._plan is not None else []

    def _save_plan(self, texts: list[str]) -> bool:
        """Save the turn's plan with ``texts`` (accepted parts kept); True when it is in the store."""
        with self._lock:
            accepted = set(self._plan.accepted) if self._plan is not None else set()
            self._plan = SavedPlan(texts, accepted)
        if not self._service.plans.save(self.base, SavedPlan(texts, accepted)):
            return False
        if self.base not in self._plan_bases:
            self._plan_bases.append(self.base)
        return True

    def part_accepted(self, number: int) -> None:
        """WeCom accepted part ``number`` of the saved plan: record it while parts are left."""
        with self._lock:
            plan = self._plan
            if plan is None:
                return
            plan.accepted.add(number)
            if len(plan.accepted) >= len(plan.texts):
                return  # the turn finishes and drops the plan
            snapshot = SavedPlan(list(plan.texts), set(plan.accepted))
        self._service.plans.save(self.base, snapshot)

    # --- a streamed answer ---------------------------------------------------------------------------

    def stream_listener(self, customer_text: Callable[[str], str]) -> Callable[[str], None]:
        """The callable a streaming bot calls with its answer so far (``early_parts.py``)."""
        self.early = EarlyParts(self, max_bytes=self._service.limits.text_bytes, customer_text=customer_text)
        return self.early.on_text

    def early_budget(self) -> int | None:
        with self._lock:
            if self._sends or self._closed or self._finished or self.outcome is not None:
                return None
            self._streaming = True  # the bot is answering: no waiting notice now
        room = self._allowance()
        return room if room >= 2 else None

    def send_early(self, index: int, text: str) -> bool:
        with self._lock:
            if self._sends or self._closed or self._finished or self.outcome is not None:
                return False
            self._open_jobs += 1
            job = SendJob(self, self.base, [text_part(text)], first=index)
            self._jobs.append(job)
        job.saved = self._save_plan([*self._plan_texts(), text])
        self._service.submit(job)
        return True

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
            job = SendJob(self, f"{self.base}/wait", [text_part(text)])
            with self._lock:
                if self._sends or self._streaming or self._closed or self._finished or room < 2:
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
        with self._lock:
            self._plan = SavedPlan(list(plan.texts), set(accepted))
        service.submit(SendJob(self, self.base, parts, accepted=accepted, saved=True))
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
        # After finishing: a crash in between leaves only a stale plan, never a new answer.
        for base in self._plan_bases:
            service.plans.drop(base)
        self._log_finished(latency)

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
