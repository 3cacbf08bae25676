"""Merge a customer's attachments with the question that follows into one turn.

Customers often send a screenshot, then type "这是什么问题？". Answering each separately wastes the
5-message budget and gives a worse answer, so an attachment (image, file, video, location, link, ...)
waits up to ``window_seconds`` for the same customer's text or voice and is answered together with
it, or alone when nothing comes.

A customer who sends more than ``flood_max_messages`` within ``flood_window_seconds`` gets the rest
merged the same way: each further message waits for the next one (up to ``MAX_FLOOD_HELD`` in a turn),
so a burst costs a few model calls, not one per message. Such a turn is ``flooded``.

Everything here runs on the customer's keyed worker (``workers.py``): messages of one customer are
taken one at a time, in order, and the window is a delayed job on the same key, so no lock orders a
customer's turns and no thread waits for a window. Media is not downloaded here: ``Turn.prepare()``
does it, on the same worker, before the turn goes to the bot.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.context import ContextType

from ..expiring import ExpiringMap
from ..wechatcom_kf_message import WechatComKfMessage
from ..workers import KeyedWorkers, Ticket

logger = logging.getLogger(__name__)

TurnKey = tuple[str, str]  # (open_kfid, external_userid)
MAX_HELD_ATTACHMENTS = 9
MAX_FLOOD_HELD = 20
FLOOD_HOLD_SECONDS = 2.0  # how long a flooding customer's message waits for the next one (no merge window)
MAX_TRACKED_CUSTOMERS = 100_000
ATTACHMENTS_ONLY_HINT = "（用户没有附加文字说明，请根据以上内容回复用户）"


@dataclass
class Turn:
    """Messages of one customer answered together, oldest first; the last may be the question."""

    key: TurnKey
    messages: list[WechatComKfMessage] = field(default_factory=list)
    flooded: bool = False  # merged because the customer sent many messages within seconds

    @property
    def msgids(self) -> list[str]:
        return [str(m.msg_id) for m in self.messages]

    @property
    def last(self) -> WechatComKfMessage:
        return self.messages[-1]

    @property
    def latest_message_time(self) -> float:
        """Send time of the turn's latest message (WeCom's 48 h send window starts there)."""
        return max((float(m.create_time or 0) for m in self.messages), default=0.0)

    @property
    def recovered(self) -> bool:
        """True when a message of the turn was claimed back from an earlier run or a dead instance."""
        return any(m.recovered for m in self.messages)

    def prepare(self) -> None:
        """Download every message's media (blocking network I/O: call it in a worker thread)."""
        for message in self.messages:
            message.prepare()

    def to_context_args(self) -> tuple[ContextType, str, dict[str, Any]]:
        """``(ctype, content, kwargs)`` for CoW's ``_compose_context``; call after ``prepare()``.

        kwargs always has ``kf_msgids``; ``image_paths`` lists downloaded images (vision input).
        A voice question stays VOICE so the host transcribes it; the host carries kwargs over to the
        transcribed TEXT context, and ``kf_attachments_text`` describes non-image attachments.
        """
        kwargs: dict[str, Any] = {"kf_msgids": self.msgids}
        question = self.last if not self.last.is_attachment else None
        attachments = self.messages[:-1] if question is not None else list(self.messages)
        images = [str(m.media_path) for m in attachments if m.is_image]
        if images:
            kwargs["image_paths"] = images
        lines = [m.describe() for m in attachments if not m.is_image]
        if images:
            lines.insert(0, f"[用户发送了{len(images)}张图片]" if len(images) > 1 else "[用户发送了图片]")
        if question is not None and question.ctype == ContextType.VOICE and question.media_path:
            if lines:
                kwargs["kf_attachments_text"] = "\n".join(lines)
            return ContextType.VOICE, str(question.content), kwargs
        if question is not None:
            lines.append(str(question.content or ""))
        elif images and len(lines) == 1:
            lines = ["[用户发送了图片，请查看图片内容并回复用户]"]
        else:
            lines.append(ATTACHMENTS_ONLY_HINT)
        return ContextType.TEXT, "\n".join(line for line in lines if line), kwargs


@dataclass
class _Held:
    messages: list[WechatComKfMessage]
    generation: int
    window: Ticket | None = None
    flooded: bool = False


class FloodWatch:
    """Arrival times per customer within the window; ``flooding`` once more than ``limit`` arrived."""

    def __init__(
        self, limit: int, window_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limit = max(0, limit)
        self._window = window_seconds
        self._clock = clock
        self._arrivals: ExpiringMap[deque[float]] = ExpiringMap(window_seconds, MAX_TRACKED_CUSTOMERS, clock)

    def arrived(self, key: TurnKey) -> bool:
        """Record an arrival; True when the customer is flooding (always False when off)."""
        if not self._limit:
            return False
        now = self._clock()
        times = self._arrivals.get(key) or deque()
        while times and times[0] <= now - self._window:
            times.popleft()
        times.append(now)
        self._arrivals.set(key, times)
        return len(times) > self._limit


class TurnAssembler:
    """Hold attachments per customer up to ``window_seconds``; ``on_turn`` gets each turn, in order,
    on the customer's worker."""

    def __init__(
        self,
        workers: KeyedWorkers,
        window_seconds: float,
        on_turn: Callable[[Turn], None],
        max_held: int = MAX_HELD_ATTACHMENTS,
        flood: FloodWatch | None = None,
        on_hold: Callable[[TurnKey, list[str]], None] | None = None,
    ) -> None:
        self._workers = workers
        self._window = max(0.0, float(window_seconds))
        self._on_turn = on_turn
        self._max_held = max(1, max_held)
        self._flood = flood or FloodWatch(0, 1.0)
        self._on_hold = on_hold  # told which messages wait together (they will be one turn)
        self._lock = threading.Lock()  # the dict is shared by keys; each key's entry by its jobs only
        self._held: dict[TurnKey, _Held] = {}
        self._seq = itertools.count()

    def submit(self, message: WechatComKfMessage) -> bool:
        """Queue a customer message on its worker (blocks while the workers are full); False when
        stopping (the message stays pending in the store)."""
        key: TurnKey = (message.open_kfid, message.external_userid)
        return self._workers.submit(key, lambda: self._take(key, message)) is not None

    def held_count(self) -> int:
        """How many messages are waiting for their window (for metrics and tests)."""
        with self._lock:
            return sum(len(h.messages) for h in self._held.values())

    def _take(self, key: TurnKey, message: WechatComKfMessage) -> None:
        with self._lock:
            held = self._held.pop(key, None)
        if held is not None and held.window is not None:
            self._workers.cancel(held.window)  # this message ends (or restarts) the wait
        messages = [*held.messages, message] if held else [message]
        flooded = self._flood.arrived(key) or (held is not None and held.flooded)
        if flooded and len(messages) < MAX_FLOOD_HELD:
            self._hold(key, messages, self._window or FLOOD_HOLD_SECONDS, flooded=True)
        elif message.is_attachment and self._window > 0 and len(messages) < self._max_held:
            self._hold(key, messages, self._window, flooded=False)
        else:
            self._on_turn(Turn(key, messages, flooded=flooded and len(messages) > 1))

    def _hold(self, key: TurnKey, messages: list[WechatComKfMessage], delay: float, *, flooded: bool) -> None:
        if self._on_hold is not None and len(messages) > 1:
            self._on_hold(key, [str(m.msg_id) for m in messages])
        generation = next(self._seq)
        entry = _Held(messages, generation, flooded=flooded)
        with self._lock:
            self._held[key] = entry
        entry.window = self._workers.submit(key, lambda: self._expire(key, generation), delay=delay)

    def _expire(self, key: TurnKey, generation: int) -> None:
        with self._lock:
            held = self._held.get(key)
            if held is None or held.generation != generation:
                return  # a question came and took the attachments along
            del self._held[key]
        self._on_turn(Turn(key, held.messages, flooded=held.flooded and len(held.messages) > 1))
