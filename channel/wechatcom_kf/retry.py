"""The channel's one retry policy: capped exponential backoff with jitter, within a total budget.

Each operation retries at exactly one level, so retries never multiply by nesting:

- ``kf/sync_msg`` and ``kf/send_msg`` are tried once by the API client; the pull job (``PULL``) and the
  delivery of a reply (``SEND``, until WeCom's 48 h send window closes) retry them, as delayed jobs on
  their keyed worker, so no thread sleeps through an outage;
- other API calls (session state, media, welcome) retry inline in the client (``QUICK``);
- an expired access_token is re-fetched at most once per call (not a retry of this policy);
- refused credentials stop token fetches for ``CREDENTIALS``' delay (``api/transport.py``);
- state store calls retry inline where they happen (``STORE``), until the store is back or the channel
  stops (see ``store/resilient.py``).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """``delay(n)`` before the n-th retry: up to ``base * 2**(n-1)``, at most ``cap``, half of it jitter.

    ``max_attempts`` counts the first try (1 = never retry); ``total_seconds`` bounds the time from the
    first try. None means no bound of that kind (the caller bounds it: a deadline, or stopping).
    """

    base: float
    cap: float
    max_attempts: int | None = None
    total_seconds: float | None = None

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures (``failures`` >= 1)."""
        ceiling = min(self.cap, self.base * 2 ** min(max(0, failures - 1), 32))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def allows(self, failures: int, elapsed: float) -> bool:
        """True when another attempt may follow ``failures`` failures, ``elapsed`` s after the first."""
        if self.max_attempts is not None and failures >= self.max_attempts:
            return False
        return self.total_seconds is None or elapsed < self.total_seconds

    def call(
        self,
        attempt: Callable[[], T],
        *,
        retry_if: Callable[[Exception], bool],
        stop: threading.Event | None = None,
        on_retry: Callable[[Exception, int, float], None] | None = None,
    ) -> T:
        """Run ``attempt`` until it succeeds; re-raise when ``retry_if`` says no, the budget is spent or
        ``stop`` is set. ``on_retry(exc, failures, delay)`` is told before each wait."""
        started = time.monotonic()
        failures = 0
        while True:
            try:
                return attempt()
            except Exception as exc:
                failures += 1
                if not retry_if(exc) or not self.allows(failures, time.monotonic() - started):
                    raise
                delay = self.delay(failures)
                if on_retry is not None:
                    on_retry(exc, failures, delay)
                if stop is not None:
                    if stop.wait(delay):
                        raise
                else:
                    time.sleep(delay)


ONCE = RetryPolicy(base=0.0, cap=0.0, max_attempts=1)
# Inline retries of calls nothing else retries: a short blip is absorbed, an outage is not waited out.
QUICK = RetryPolicy(base=0.2, cap=2.0, max_attempts=3, total_seconds=5.0)
# Pull jobs: until the pull succeeds (a callback's messages must not wait for the next callback).
PULL = RetryPolicy(base=0.5, cap=30.0)
# Sends of a reply: until the customer's 48 h send window closes (the caller's deadline).
SEND = RetryPolicy(base=1.0, cap=15.0)
# State store calls: until the store is back, or the channel stops.
STORE = RetryPolicy(base=0.2, cap=2.0)
# gettoken after WeCom refused the credentials (wrong secret, untrusted IP): 1-2 min, growing to 5-10 min,
# because repeated wrong secrets get the server's IP blocked for an hour.
CREDENTIALS = RetryPolicy(base=120.0, cap=600.0)
