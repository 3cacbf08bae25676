"""Opening a shared state store (Redis) that may not be up yet when the channel starts.

Compose or systemd may start the channel a moment before Redis answers. Failing at once would make
the supervisor restart it in a tight loop (and print a traceback each time); waiting for ever would
hide a wrong ``wechatcom_kf_redis_url``. So: retry for ``wechatcom_kf_redis_start_wait_seconds``,
say so once, then stop with one line and exit code 1 (a restart may well help).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from .base import StoreUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")
FIRST_DELAY_SECONDS, MAX_DELAY_SECONDS = 0.5, 5.0


class StoreUnreachableAtStart(RuntimeError):
    """The store did not answer within the wait: a one-line reason; this runtime exits with 1."""

    exit_code = 1


def open_when_reachable(
    open_store: Callable[[], T],
    where: str,
    wait_seconds: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``open_store()``, retried while it raises StoreUnavailable, for at most ``wait_seconds``."""
    deadline = clock() + max(0.0, wait_seconds)
    delay = FIRST_DELAY_SECONDS
    warned = False
    while True:
        try:
            return open_store()
        except StoreUnavailable as exc:
            left = deadline - clock()
            if left <= 0:
                waited = f"{wait_seconds:.0f}"
                raise StoreUnreachableAtStart(
                    f"Redis {where} 在 {waited} 秒内无法连接（{exc}）：检查 wechatcom_kf_redis_url 与 "
                    f"Redis 是否在运行 / Redis at {where} did not answer within {waited} s ({exc}): "
                    "check wechatcom_kf_redis_url and that Redis runs"
                ) from None
            if not warned:
                logger.warning(
                    "Redis at %s does not answer yet (%s); retrying for up to %.0f s", where, exc, left
                )
                warned = True
            sleep(min(delay, left))
            delay = min(delay * 2, MAX_DELAY_SECONDS)
