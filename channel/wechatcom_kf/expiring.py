"""A bounded set of keys that expire: per-customer records that must not grow with traffic."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable


class ExpiringKeys:
    """Thread-safe set of keys that expire ``ttl`` seconds after they were (re-)added; at most
    ``max_keys`` (the oldest go first). Insertion order is expiry order, so pruning is O(1) amortized."""

    def __init__(self, ttl: float, max_keys: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._max = max(1, max_keys)
        self._clock = clock
        self._keys: OrderedDict[Hashable, float] = OrderedDict()  # key -> expires at
        self._lock = threading.Lock()

    def add(self, key: Hashable) -> None:
        now = self._clock()
        with self._lock:
            self._keys.pop(key, None)
            self._keys[key] = now + self._ttl
            self._prune(now)

    def discard(self, key: Hashable) -> None:
        with self._lock:
            self._keys.pop(key, None)

    def __contains__(self, key: Hashable) -> bool:
        now = self._clock()
        with self._lock:
            self._prune(now)
            return key in self._keys

    def __len__(self) -> int:
        with self._lock:
            self._prune(self._clock())
            return len(self._keys)

    def _prune(self, now: float) -> None:
        keys = self._keys
        while keys:
            oldest, expires_at = next(iter(keys.items()))
            if expires_at > now and len(keys) <= self._max:
                return
            del keys[oldest]
