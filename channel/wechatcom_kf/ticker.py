"""The channel's one maintenance thread: periodic tasks (claim renewal, orphan sweep, pruning).

Each task runs every ``interval`` seconds, the first time one interval after ``start()``. A task that
raises is logged and runs again at its next tick. ``run_due(now)`` runs what is due at ``now`` without
the thread (tests drive it with their own clock).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass
class _Task:
    name: str
    interval: float
    run: Callable[[], object]
    next_at: float
    first_after: float


class Ticker:
    def __init__(self, name: str = "kf-maintenance", clock: Callable[[], float] = time.monotonic) -> None:
        self._name = name
        self._clock = clock
        self._tasks: list[_Task] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(
        self, name: str, interval: float, run: Callable[[], object], *, first_after: float | None = None
    ) -> None:
        """Run ``run()`` every ``interval`` seconds, the first time ``first_after`` seconds after
        ``start()`` (default: one interval); call before ``start``."""
        interval = max(0.01, interval)
        first = interval if first_after is None else max(0.0, first_after)
        self._tasks.append(_Task(name, interval, run, self._clock() + first, first))

    def run_due(self, now: float | None = None) -> list[str]:
        """Run every task due at ``now``; returns their names."""
        now = self._clock() if now is None else now
        ran: list[str] = []
        for task in self._tasks:
            if now < task.next_at or self._stop.is_set():
                continue
            task.next_at = now + task.interval
            ran.append(task.name)
            try:
                task.run()
            except Exception:
                logger.exception("maintenance task %s failed; it runs again at its next tick", task.name)
        return ran

    def start(self) -> None:
        if self._thread is None and self._tasks:
            now = self._clock()
            for task in self._tasks:
                task.next_at = now + task.first_after
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            next_at = min(task.next_at for task in self._tasks)
            if self._stop.wait(max(0.0, next_at - self._clock())):
                return
            self.run_due()
