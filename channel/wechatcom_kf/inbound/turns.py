"""Merge a customer's attachments with the question that follows into one turn.

Customers often send a screenshot, then type "这是什么问题？". Answering each separately wastes the
5-message budget and gives a worse answer, so an attachment (image, file, video, location, link, ...)
waits up to ``window_seconds`` for the same customer's text or voice and is answered together with
it, or alone when nothing comes. One scheduler thread with a heap and a Condition runs the windows.

``emit`` is called with the assembler's lock held (that is what keeps each customer's turns in
order), so it must be quick and must not wait for another thread that calls into the assembler:
hand the turn to a queue. Media is not downloaded here: the consumer calls ``Turn.prepare()`` in a
worker thread, then ``Turn.to_context_args()``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.context import ContextType

from ..wechatcom_kf_message import WechatComKfMessage

logger = logging.getLogger(__name__)

TurnKey = tuple[str, str]  # (open_kfid, external_userid)
MAX_HELD_ATTACHMENTS = 9
ATTACHMENTS_ONLY_HINT = "（用户没有附加文字说明，请根据以上内容回复用户）"


@dataclass
class Turn:
    """Messages of one customer answered together, oldest first; the last may be the question."""

    key: TurnKey
    messages: list[WechatComKfMessage] = field(default_factory=list)

    @property
    def msgids(self) -> list[str]:
        return [str(m.msg_id) for m in self.messages]

    @property
    def last(self) -> WechatComKfMessage:
        return self.messages[-1]

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


class TurnAssembler:
    """Hold attachments per customer up to ``window_seconds`` and emit ``Turn``s in order."""

    def __init__(
        self,
        window_seconds: float,
        emit: Callable[[Turn], None],
        max_held: int = MAX_HELD_ATTACHMENTS,
    ) -> None:
        self._window = max(0.0, float(window_seconds))
        self._emit = emit
        self._max_held = max(1, max_held)
        self._cond = threading.Condition(threading.RLock())
        self._held: dict[TurnKey, _Held] = {}
        self._heap: list[tuple[float, int, TurnKey]] = []
        self._seq = itertools.count()
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, message: WechatComKfMessage) -> None:
        """Take one customer message; emits now or after the window (see module docstring)."""
        key: TurnKey = (message.open_kfid, message.external_userid)
        with self._cond:
            held = self._held.pop(key, None)
            messages = [*held.messages, message] if held else [message]
            if not message.is_attachment or self._window <= 0 or self._closed:
                self._deliver(Turn(key, messages))
                return
            if len(messages) >= self._max_held:
                self._deliver(Turn(key, messages))
                return
            generation = next(self._seq)
            self._held[key] = _Held(messages, generation)
            heapq.heappush(self._heap, (time.monotonic() + self._window, generation, key))
            self._ensure_thread()
            self._cond.notify()

    def held_count(self) -> int:
        """How many messages are waiting for their window (for metrics and tests)."""
        with self._cond:
            return sum(len(h.messages) for h in self._held.values())

    def flush_all(self) -> int:
        """Emit every held attachment now (shutdown); returns the number of turns emitted."""
        with self._cond:
            keys = list(self._held)
            for key in keys:
                self._deliver(Turn(key, self._held.pop(key).messages))
            self._heap.clear()
            return len(keys)

    def close(self, timeout: float = 5.0) -> None:
        """Flush held messages and stop the scheduler thread; later submits are emitted at once."""
        with self._cond:
            self._closed = True
            self.flush_all()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="kf-turn-assembler", daemon=True)
            self._thread.start()

    def _deliver(self, turn: Turn) -> None:
        try:
            self._emit(turn)
        except Exception:
            # The messages stay pending in the store and are re-dispatched after a restart.
            logger.exception("emitting a turn of %d message(s) failed", len(turn.messages))

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, generation, key = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
                held = self._held.get(key)
                if held is not None and held.generation == generation:
                    del self._held[key]
                    self._deliver(Turn(key, held.messages))
