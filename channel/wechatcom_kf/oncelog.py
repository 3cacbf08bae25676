"""Log lines that would otherwise repeat: once per kind of thing, once per outage.

What an outsider or an outage can make happen a thousand times a second must not write a thousand
lines: the first occurrence is logged at its level, the rest at DEBUG.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable

MAX_KEYS = 256


class OncePerKey:
    """``first(key)`` is True the first time a key is seen (at most ``max_keys`` are remembered)."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self._seen: set[Hashable] = set()
        self._max = max_keys
        self._lock = threading.Lock()

    def first(self, key: Hashable) -> bool:
        with self._lock:
            if key in self._seen or len(self._seen) >= self._max:
                return False
            self._seen.add(key)
            return True


class OutageLog:
    """One WARNING when ``what`` starts failing, DEBUG while it keeps failing, one INFO when it is back."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._logger = logger
        self._what = what
        self._lock = threading.Lock()
        self._since: float | None = None
        self._failures = 0

    @property
    def down(self) -> bool:
        with self._lock:
            return self._since is not None

    def failed(self, reason: str) -> None:
        with self._lock:
            self._failures += 1
            first = self._since is None
            if first:
                self._since = time.monotonic()
        if first:
            self._logger.warning("%s unavailable (%s); retrying until it is back", self._what, reason)
        else:
            self._logger.debug("%s still unavailable (%s)", self._what, reason)

    def succeeded(self) -> None:
        with self._lock:
            if self._since is None:
                return
            seconds, failures = time.monotonic() - self._since, self._failures
            self._since, self._failures = None, 0
        self._logger.info(
            "%s available again after %.1f s (%d failed call(s))", self._what, seconds, failures
        )
