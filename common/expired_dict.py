"""A dict whose entries expire after a fixed time and which holds at most ``max_items`` entries."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any


class ExpiredDict:
    """Thread-safe; reading an entry refreshes its expiry (CoW's semantics); oldest evicted first."""

    def __init__(self, expires_in_seconds: float, max_items: int = 10000) -> None:
        self.expires_in_seconds = expires_in_seconds
        self.max_items = max_items
        self._data: OrderedDict[Any, tuple[Any, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _purge(self, now: float) -> None:
        while self._data:
            key, (_, expiry) = next(iter(self._data.items()))
            if expiry > now and len(self._data) <= self.max_items:
                break
            del self._data[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        now = time.monotonic()
        with self._lock:
            self._data.pop(key, None)
            self._data[key] = (value, now + self.expires_in_seconds)
            self._purge(now)

    def __getitem__(self, key: Any) -> Any:
        now = time.monotonic()
        with self._lock:
            self._purge(now)
            value, _ = self._data.pop(key)
            self._data[key] = (value, now + self.expires_in_seconds)
            return value

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def pop(self, key: Any, default: Any = None) -> Any:
        with self._lock:
            self._purge(time.monotonic())
            entry = self._data.pop(key, None)
        return default if entry is None else entry[0]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            self._purge(time.monotonic())
            return key in self._data

    def __delitem__(self, key: Any) -> None:
        with self._lock:
            del self._data[key]

    def __len__(self) -> int:
        with self._lock:
            self._purge(time.monotonic())
            return len(self._data)

    def keys(self) -> list[Any]:
        with self._lock:
            self._purge(time.monotonic())
            return list(self._data)
