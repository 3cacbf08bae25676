"""The channel's one bounded, expiring container: per-customer records must not grow with traffic."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class ExpiringMap(Generic[V]):
    """Thread-safe map whose entries expire ``ttl`` seconds after they were last set; at most
    ``max_keys`` (the least recently set go first). One TTL for all entries keeps insertion order equal
    to expiry order, so pruning looks only at the front: O(1) amortized per call."""

    def __init__(self, ttl: float, max_keys: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._max = max(1, max_keys)
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[V, float]] = OrderedDict()  # key -> (value, expires at)
        self._lock = threading.Lock()

    def set(self, key: Hashable, value: V) -> None:
        """Store ``value``; the entry expires ``ttl`` from now and becomes the most recent."""
        now = self._clock()
        with self._lock:
            self._entries.pop(key, None)
            self._prune(now, room=1)
            self._entries[key] = (value, now + self._ttl)

    def get(self, key: Hashable) -> V | None:
        """The value, or None when missing or expired (expired entries are dropped by ``set``)."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            return None if entry is None or entry[1] <= now else entry[0]

    def discard(self, key: Hashable) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def __contains__(self, key: Hashable) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        with self._lock:
            self._prune(self._clock())
            return len(self._entries)

    def _prune(self, now: float, room: int = 0) -> None:
        entries = self._entries
        while entries:
            oldest, (_, expires_at) = next(iter(entries.items()))
            if expires_at > now and len(entries) + room <= self._max:
                return
            del entries[oldest]


class ExpiringKeys(ExpiringMap[bool]):
    """A set on :class:`ExpiringMap`: ``add(key)``, ``key in keys``."""

    def add(self, key: Hashable) -> None:
        self.set(key, True)
