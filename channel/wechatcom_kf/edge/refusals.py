"""What the edge refused, counted by kind, and logged at most once per kind per minute.

Outsiders can send thousands of forged or malformed requests a second; each kind of refusal is one log
line per minute with how many there were since the last line, and a counter (for metrics) always.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

LOG_INTERVAL_SECONDS = 60.0


class Refusals:
    """Thread-safe: the loop thread and the callback handler both report here."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = LOG_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()  # every refusal since start, by kind
        self._unlogged: Counter[str] = Counter()
        self._logged_at: dict[str, float] = {}

    def refuse(self, kind: str, detail: str = "", level: int = logging.INFO) -> None:
        """Count one refusal of ``kind``; log it unless this kind was logged within the interval."""
        now = self._clock()
        with self._lock:
            self.counts[kind] += 1
            self._unlogged[kind] += 1
            last = self._logged_at.get(kind)
            if last is not None and now - last < self._interval:
                return
            self._logged_at[kind] = now
            count, self._unlogged[kind] = self._unlogged[kind], 0
        suffix = f" ({detail})" if detail else ""
        if count > 1:
            self._logger.log(level, "refused %d request(s): %s%s (logged once a minute)", count, kind, suffix)
        else:
            self._logger.log(level, "refused a request: %s%s", kind, suffix)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)
