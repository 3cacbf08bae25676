"""Event-driven session dispatcher: per-session FIFO, many sessions at once, bounded queues.

Replaces CoW's consumer thread that polled every session queue each 0.1-0.2 s and ran handlers on a
fixed pool of 8 threads. Here a producer wakes an idle worker through a condition variable, so there
is no polling, and up to ``max_workers`` sessions are handled at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


class DispatcherStopped(RuntimeError):
    """Raised by ``submit`` after ``stop`` was called."""


@dataclass
class _Session:
    queue: deque[Any] = field(default_factory=deque)
    running: int = 0
    ready: bool = False  # listed in the dispatcher's ready queue


class SessionDispatcher:
    """Runs ``handler(item)`` in worker threads; items of one session start in submission order.

    ``concurrency_in_session`` items of one session may run at once (1 keeps replies in order);
    at most ``max_workers`` run in total; at most ``max_pending`` wait, and ``submit`` blocks
    (backpressure) while that many are waiting.
    """

    def __init__(
        self,
        handler: Callable[[Any], None],
        *,
        concurrency_in_session: int = 1,
        max_workers: int = 64,
        max_pending: int = 10000,
        name: str = "dispatch",
    ) -> None:
        self._handler = handler
        self._per_session = max(1, concurrency_in_session)
        self._max_workers = max(1, max_workers)
        self._max_pending = max(1, max_pending)
        self._name = name
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)  # workers wait here
        self._has_space = threading.Condition(self._lock)  # producers wait here (backpressure)
        self._changed = threading.Condition(self._lock)  # stop() waits here for the queues to drain
        self._sessions: dict[str, _Session] = {}
        self._ready: deque[str] = deque()
        self._pending = 0
        self._running = 0
        self._workers: list[threading.Thread] = []
        self._idle = 0
        self._closing = False  # no new items
        self._closed = False  # workers exit

    # -- producer side -------------------------------------------------------------------------
    def submit(
        self, session_id: str, item: Any, *, front: bool = False, timeout: float | None = None
    ) -> None:
        """Queue ``item`` for ``session_id``; blocks while the queues are full.

        Raises DispatcherStopped after stop(), TimeoutError when ``timeout`` passes while full.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._pending >= self._max_pending and not self._closing:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError("dispatcher queue is full")
                self._has_space.wait(remaining)
            if self._closing:
                raise DispatcherStopped("dispatcher is stopping")
            session = self._sessions.setdefault(session_id, _Session())
            if front:
                session.queue.appendleft(item)
            else:
                session.queue.append(item)
            self._pending += 1
            self._mark_ready(session_id, session)

    def cancel_session(self, session_id: str) -> int:
        """Drop the session's queued items that have not started; returns how many were dropped."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return 0
            dropped = len(session.queue)
            session.queue.clear()
            self._pending -= dropped
            self._forget_if_idle(session_id, session)
            self._has_space.notify_all()
            self._changed.notify_all()
        if dropped:
            logger.info("cancelled %d queued contexts of session %s", dropped, session_id)
        return dropped

    def cancel_all(self) -> int:
        with self._lock:
            session_ids = list(self._sessions)
        return sum(self.cancel_session(sid) for sid in session_ids)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "pending": self._pending,
                "running": self._running,
                "sessions": len(self._sessions),
                "workers": len(self._workers),
            }

    # -- internals (called with self._lock held) ---------------------------------------------------
    def _mark_ready(self, session_id: str, session: _Session) -> None:
        if session.ready or not session.queue or session.running >= self._per_session:
            return
        session.ready = True
        self._ready.append(session_id)
        self._has_work.notify()
        # A notified worker may not have woken yet: spawn while ready sessions outnumber idle workers.
        if len(self._ready) > self._idle and len(self._workers) < self._max_workers:
            self._spawn()

    def _forget_if_idle(self, session_id: str, session: _Session) -> None:
        if not session.queue and session.running == 0 and not session.ready:
            self._sessions.pop(session_id, None)

    def _spawn(self) -> None:
        thread = threading.Thread(target=self._work, name=f"{self._name}-{len(self._workers)}", daemon=True)
        self._workers.append(thread)
        thread.start()

    def _next(self) -> tuple[str, _Session, Any] | None:
        with self._lock:
            while not self._ready and not self._closed:
                self._idle += 1
                try:
                    self._has_work.wait()
                finally:
                    self._idle -= 1
            if self._closed:
                return None
            session_id = self._ready.popleft()
            session = self._sessions[session_id]
            session.ready = False
            item = session.queue.popleft()
            self._pending -= 1
            session.running += 1
            self._running += 1
            self._mark_ready(session_id, session)  # another item of it may run if concurrency allows
            self._has_space.notify()
            return session_id, session, item

    def _work(self) -> None:
        while True:
            taken = self._next()
            if taken is None:
                return
            session_id, session, item = taken
            try:
                self._handler(item)
            except Exception:
                logger.exception("handler failed for session %s", session_id)
            finally:
                with self._lock:
                    session.running -= 1
                    self._running -= 1
                    if not self._closed:
                        self._mark_ready(session_id, session)
                    self._forget_if_idle(session_id, session)
                    self._changed.notify_all()
                # An idle worker must not keep its last context (and what it refers to) alive.
                del taken, session, item

    # -- shutdown --------------------------------------------------------------------------------
    def stop(self, timeout: float = 10.0, *, drain: bool = True) -> bool:
        """Refuse new items; let queued and running items finish within ``timeout`` (``drain``),
        then abandon what is left. Returns True when nothing was abandoned."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            self._closing = True
            self._has_space.notify_all()
            if drain:
                while self._pending or self._running:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._changed.wait(remaining)
            abandoned = self._pending
            for session in self._sessions.values():
                session.queue.clear()
                session.ready = False
            self._ready.clear()
            self._pending = 0
            still_running = self._running
            self._closed = True
            self._has_work.notify_all()
            workers = list(self._workers)
        if abandoned or still_running:
            logger.warning(
                "dispatcher stopped: %d queued contexts abandoned, %d still running", abandoned, still_running
            )
        for thread in workers:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        return abandoned == 0 and still_running == 0
