"""The channel's one bounded, expiring container: per-customer records must not grow with traffic."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

V = TypeVar("V")
E = TypeVar("E")
R = TypeVar("R", bound="Expires")


class Expires(Protocol):
    """A record that carries its own expiry (see :class:`ExpiringRecords`)."""

    expires_at: float


class _Expiring(Generic[E]):
    """Entries that expire ``ttl`` seconds after they were last set; at most ``max_keys`` (the least
    recently set go first). One TTL for all entries keeps insertion order equal to expiry order, so
    pruning looks only at the front: O(1) amortized per call."""

    def __init__(self, ttl: float, max_keys: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._max = max(1, max_keys)
        self._clock = clock
        self._entries: OrderedDict[Hashable, E] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _expires_at(entry: E) -> float:
        raise NotImplementedError

    def _put(self, key: Hashable, entry: Callable[[float], E]) -> None:
        now = self._clock()
        with self._lock:
            self._entries.pop(key, None)
            self._prune(now, room=1)
            self._entries[key] = entry(now + self._ttl)

    def _live(self, key: Hashable) -> E | None:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            return None if entry is None or self._expires_at(entry) <= now else entry

    def discard(self, key: Hashable) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def __contains__(self, key: Hashable) -> bool:
        return self._live(key) is not None

    def __len__(self) -> int:
        with self._lock:
            self._prune(self._clock())
            return len(self._entries)

    def _prune(self, now: float, room: int = 0) -> None:
        entries = self._entries
        while entries:
            oldest, entry = next(iter(entries.items()))
            if self._expires_at(entry) > now and len(entries) + room <= self._max:
                return
            del entries[oldest]


class ExpiringMap(_Expiring[tuple[V, float]]):
    """Thread-safe map of expiring entries (see :class:`_Expiring`); expired ones are dropped by ``set``."""

    @staticmethod
    def _expires_at(entry: tuple[V, float]) -> float:
        return entry[1]

    def set(self, key: Hashable, value: V) -> None:
        """Store ``value``; the entry expires ``ttl`` from now and becomes the most recent."""
        self._put(key, lambda expires_at: (value, expires_at))

    def get(self, key: Hashable) -> V | None:
        """The value, or None when missing or expired."""
        entry = self._live(key)
        return None if entry is None else entry[0]


class ExpiringKeys(_Expiring[float]):
    """An expiring set: ``add(key)``, ``key in keys``. It keeps only each key's expiry time (a set of
    customers or msgids can hold 100,000 keys)."""

    @staticmethod
    def _expires_at(entry: float) -> float:
        return entry

    def add(self, key: Hashable) -> None:
        self._put(key, lambda expires_at: expires_at)  # the entry is its expiry time


class ExpiringRecords(_Expiring[R]):
    """An expiring map whose values are mutable records with an ``expires_at`` slot, which ``set``
    fills in: no (value, expiry) pair per entry (the send ledger keeps 100,000 customers)."""

    @staticmethod
    def _expires_at(entry: R) -> float:
        return entry.expires_at

    def set(self, key: Hashable, record: R) -> None:
        """Store ``record``; it expires ``ttl`` from now and becomes the most recent."""

        def stamped(expires_at: float) -> R:
            record.expires_at = expires_at
            return record

        self._put(key, stamped)

    def get(self, key: Hashable) -> R | None:
        """The record, or None when missing or expired."""
        return self._live(key)
