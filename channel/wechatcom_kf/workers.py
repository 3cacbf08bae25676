"""Keyed workers: the channel's one primitive for running work off the caller's thread.

Jobs of one key run one at a time, in the order they became due; jobs of different keys run
concurrently on at most ``threads`` threads. A job may be delayed (a merge window, a retry with
backoff): it waits in a heap, and an idle worker sleeps exactly until the earliest one is due — no
timer threads, no polling. A *coalesced* submit merges into the key's coalesced job that has not
started yet (a callback during a pull asks for one more pull, not one per callback).

Bounded: at most ``max_waiting`` jobs wait; ``submit`` blocks while the pool is full (backpressure),
except for coalesced submits and submits from the pool's own workers (which must never wait for
themselves).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

Job = Callable[[], None]


@dataclass(eq=False)
class Ticket:
    """A submitted job; ``KeyedWorkers.cancel(ticket)`` drops it while it is still delayed."""

    key: Hashable
    run: Job
    due: float
    cancelled: bool = False
    delayed: bool = False  # waiting in the heap (not ready, not running)


@dataclass
class _KeyState:
    ready: deque[Ticket] = field(default_factory=deque)
    delayed: int = 0
    running: bool = False
    listed: bool = False  # in the runnable queue
    coalesced: Ticket | None = None  # the coalesced job that has not started yet


class KeyedWorkers:
    """Per-key serial, delayed, bounded execution on a small pool of threads."""

    def __init__(
        self,
        name: str,
        threads: int,
        *,
        max_waiting: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._max_threads = max(1, threads)
        self._max_waiting = max(1, max_waiting)
        self._clock = clock
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)  # idle workers wait here
        self._changed = threading.Condition(self._lock)  # submitters waiting for room, wait_idle, shutdown
        self._keys: dict[Hashable, _KeyState] = {}
        self._runnable: deque[Hashable] = deque()
        self._timers: list[tuple[float, int, Ticket]] = []
        self._seq = itertools.count()
        self._waiting = 0  # ready + delayed jobs, not running
        self._running = 0
        self._idle = 0
        self._threads: list[threading.Thread] = []
        self._own = threading.local()
        self._closed = False

    # --- submitting -----------------------------------------------------------------------------

    def submit(
        self,
        key: Hashable,
        job: Job,
        *,
        delay: float = 0.0,
        coalesce: bool = False,
        timeout: float | None = None,
    ) -> Ticket | None:
        """Queue ``job`` for ``key`` (after ``delay`` seconds): its ticket (truthy), or None once shut
        down. A coalesced submit returns the ticket of the job it merged into.

        Raises TimeoutError when the pool stays full for ``timeout`` seconds.
        """
        with self._lock:
            if not coalesce and not getattr(self._own, "worker", False):
                self._wait_for_space(timeout)
            if self._closed:
                return None
            state = self._keys.setdefault(key, _KeyState())
            due = self._clock() + max(0.0, delay)
            if coalesce and state.coalesced is not None:
                if due >= state.coalesced.due:
                    return state.coalesced  # it comes first anyway and runs with the newest state
                self._cancel(state, state.coalesced)
            entry = Ticket(key, job, due)
            if coalesce:
                state.coalesced = entry
            self._waiting += 1
            if delay > 0:
                state.delayed += 1
                entry.delayed = True
                heapq.heappush(self._timers, (due, next(self._seq), entry))
                self._wakeup.notify()  # a sleeping worker must recompute its wake-up time
                if not self._idle and len(self._threads) < self._max_threads:
                    self._spawn()  # someone must be awake for it while the others run jobs
            else:
                self._release_due()  # what became due earlier runs first
                self._make_ready(state, entry)
            return entry

    def cancel(self, ticket: Ticket) -> bool:
        """Drop a delayed job before it is due; False when it is ready, running, done or cancelled."""
        with self._lock:
            if ticket.cancelled or not ticket.delayed:
                return False
            state = self._keys[ticket.key]
            self._cancel(state, ticket)
            if state.coalesced is ticket:
                state.coalesced = None
            if not (state.ready or state.delayed or state.running):
                del self._keys[ticket.key]
            self._changed.notify_all()
            return True

    def _wait_for_space(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._waiting >= self._max_waiting and not self._closed:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"{self.name}: {self._waiting} jobs waiting")
            self._changed.wait(left)

    def _cancel(self, state: _KeyState, entry: Ticket) -> None:
        """Drop a delayed job that has not become ready (it is skipped when its timer fires)."""
        entry.cancelled = True
        state.delayed -= 1
        self._waiting -= 1

    def _make_ready(self, state: _KeyState, entry: Ticket) -> None:
        state.ready.append(entry)
        if not state.running and not state.listed:
            state.listed = True
            self._runnable.append(entry.key)
            self._wakeup.notify()
            if len(self._runnable) > self._idle and len(self._threads) < self._max_threads:
                self._spawn()

    def _spawn(self) -> None:
        thread = threading.Thread(target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True)
        self._threads.append(thread)
        thread.start()

    # --- running --------------------------------------------------------------------------------

    def _release_due(self) -> None:
        now = self._clock()
        while self._timers and self._timers[0][0] <= now:
            _, _, entry = heapq.heappop(self._timers)
            if entry.cancelled:
                continue
            state = self._keys[entry.key]
            state.delayed -= 1
            entry.delayed = False
            self._make_ready(state, entry)

    def _next(self) -> Ticket | None:
        with self._lock:
            while True:
                self._release_due()
                if self._runnable:
                    break
                if self._closed:
                    return None
                timeout = max(0.0, self._timers[0][0] - self._clock()) if self._timers else None
                self._idle += 1
                try:
                    self._wakeup.wait(timeout)
                finally:
                    self._idle -= 1
            key = self._runnable.popleft()
            state = self._keys[key]
            state.listed = False
            entry = state.ready.popleft()
            if state.coalesced is entry:
                state.coalesced = None  # a submit from now on asks for one more run
            state.running = True
            self._waiting -= 1
            self._running += 1
            self._changed.notify_all()  # room for a blocked submitter
            return entry

    def _work(self) -> None:
        self._own.worker = True
        while True:
            entry = self._next()
            if entry is None:
                return
            try:
                entry.run()
            except Exception:
                logger.exception("%s: job of %s failed", self.name, entry.key)
            with self._lock:
                self._running -= 1
                state = self._keys[entry.key]
                state.running = False
                if state.ready:
                    state.listed = True
                    self._runnable.append(entry.key)
                elif not state.delayed:
                    del self._keys[entry.key]
                self._changed.notify_all()
            del entry  # an idle worker must not keep its last job (and what it refers to) alive

    # --- waiting and stopping -------------------------------------------------------------------

    def wake(self) -> None:
        """Re-check delayed jobs now (for an injected clock that was moved forward)."""
        with self._lock:
            self._wakeup.notify_all()

    def busy(self) -> bool:
        """True while a job waits (delayed ones included) or runs."""
        with self._lock:
            return bool(self._waiting or self._running)

    def waiting(self) -> int:
        with self._lock:
            return self._waiting

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing waits or runs; False on timeout."""
        with self._lock:
            return self._changed.wait_for(lambda: not (self._waiting or self._running), timeout)

    def shutdown(self, timeout: float) -> bool:
        """Take no more jobs; drop delayed ones; let ready and running jobs finish within ``timeout``.

        True when everything that was ready ran. Dropped jobs are retries and merge windows of work
        that is still pending in the state store: the next start picks it up.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            self._closed = True
            dropped = 0
            for _, _, entry in self._timers:
                if not entry.cancelled:
                    self._cancel(self._keys[entry.key], entry)
                    dropped += 1
            self._timers.clear()
            self._wakeup.notify_all()
            self._changed.notify_all()
            drained = self._changed.wait_for(
                lambda: not (self._runnable or self._running), max(0.0, deadline - time.monotonic())
            )
            threads = list(self._threads)
        if dropped:
            logger.info("%s: %d delayed job(s) dropped at stop; their work stays pending", self.name, dropped)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        return drained
