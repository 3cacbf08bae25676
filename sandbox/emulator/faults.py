"""Fault knobs: latency, HTTP 500s, dropped connections, 45009 bursts, token invalidation,
refused ``kf/service_state/trans`` and ``getcallbackip`` calls."""

from __future__ import annotations

import random
import threading
from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class FaultDecision:
    """What to do with one API call before it reaches its handler."""

    delay: float = 0.0
    drop: bool = False
    error_5xx: bool = False
    rate_limited: bool = False


class Faults:
    """All default off; thread-safe; may be changed while the emulator runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random()
        self.latency: dict[str, float] = {}
        self.error_5xx_rate = 0.0
        self.drop_rate = 0.0
        self.invalidate_tokens_every: float | None = None
        self._rate_limit_left = 0
        self._rate_limit_path: str | None = None
        # kf/service_state/trans answers this errcode (e.g. 95016, 95014, 95019) while set; only
        # for transitions to ``trans_errcode_states`` when that is set (None = every target state).
        self.trans_errcode: int | None = None
        self.trans_errcode_states: Collection[int] | None = None
        self.callback_ip_errcode: int | None = None  # getcallbackip answers this errcode while set
        self.counts = {
            "dropped": 0,
            "error_5xx": 0,
            "rate_limited": 0,
            "trans_refused": 0,
            "callback_ip_refused": 0,
        }

    def seed(self, value: int) -> None:
        """Make the random fault choices deterministic."""
        with self._lock:
            self._rng.seed(value)

    def rate_limit_next(self, n: int, path: str | None = None) -> None:
        """The next ``n`` API calls (only those to ``path`` when given) answer errcode 45009."""
        with self._lock:
            self._rate_limit_left = max(0, int(n))
            self._rate_limit_path = path

    def reset(self) -> None:
        with self._lock:
            self.latency = {}
            self.error_5xx_rate = 0.0
            self.drop_rate = 0.0
            self.invalidate_tokens_every = None
            self._rate_limit_left = 0
            self.trans_errcode = None
            self.trans_errcode_states = None
            self.callback_ip_errcode = None

    def decide(self, path: str) -> FaultDecision:
        """Roll the dice for one call to ``path`` (e.g. "kf/sync_msg")."""
        with self._lock:
            delay = float(self.latency.get(path, self.latency.get("*", 0.0)))
            if self.drop_rate > 0 and self._rng.random() < self.drop_rate:
                self.counts["dropped"] += 1
                return FaultDecision(delay=delay, drop=True)
            if self.error_5xx_rate > 0 and self._rng.random() < self.error_5xx_rate:
                self.counts["error_5xx"] += 1
                return FaultDecision(delay=delay, error_5xx=True)
            if self._rate_limit_left > 0 and self._rate_limit_path in (None, path):
                self._rate_limit_left -= 1
                self.counts["rate_limited"] += 1
                return FaultDecision(delay=delay, rate_limited=True)
            return FaultDecision(delay=delay)

    def trans_refusal(self, new_state: int) -> int | None:
        """The errcode a ``service_state/trans`` to ``new_state`` must answer now, or None (counted)."""
        with self._lock:
            code, states = self.trans_errcode, self.trans_errcode_states
            if code is None or (states is not None and new_state not in states):
                return None
            self.counts["trans_refused"] += 1
            return int(code)

    def callback_ip_refusal(self) -> int | None:
        """The errcode ``getcallbackip`` must answer now, or None (counted)."""
        with self._lock:
            code = self.callback_ip_errcode
            if code is None:
                return None
            self.counts["callback_ip_refused"] += 1
            return int(code)
