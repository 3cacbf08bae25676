"""Helpers of the store tests (imported by them; fixtures live in conftest.py).

``RedisServer``: a private redis-server that a test may stop and start again on the same port (the run's
shared one must stay up for the others). ``file_size_limit``: a real write failure that root cannot
bypass (RLIMIT_FSIZE: a write past the limit fails with EFBIG, as on a full disk).
"""

from __future__ import annotations

import contextlib
import functools
import json
import resource
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from channel.wechatcom_kf.store.done_ids import digest
from channel.wechatcom_kf.store.journal import JOURNAL_NAME
from sandbox.harness import free_port
from tests.redis_helpers import PortTaken, RedisServer, redis_binary
from tests.redis_helpers import wait_for as wait_until

__all__ = ["PortTaken", "RedisServer", "free_port", "redis_binary", "wait_until"]

KF = "wkAAAA"
KF2 = "wkBBBB"
KF3 = "wkCCCC"
LONG = 3600.0  # a lease or TTL that outlives any test, including its advance() calls
T0 = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    """Creates stores of one kind that share state; ``advance`` moves their clock forward."""

    name: str
    make: Callable[..., Any]
    advance: Callable[[float], None]
    short_ttl: float  # a TTL that ``advance(3 * short_ttl)`` surely expires
    directory: Path | None = None
    opened: list[Any] = field(default_factory=list)


def item(msgid: str, kfid: str = KF, text: str = "你好") -> dict[str, Any]:
    return {
        "msgid": msgid,
        "open_kfid": kfid,
        "external_userid": "wmUSER",
        "send_time": 1_700_000_000,
        "origin": 3,
        "msgtype": "text",
        "text": {"content": text},
    }


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [it["msgid"] for it in items]


class Call:
    """``fn()`` in a thread: its result or exception once it returns."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.result = fn()
        except BaseException as exc:
            self.error = exc

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float = 15.0) -> Call:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the call still blocks after {timeout} s"
        return self


@contextlib.contextmanager
def file_size_limit(max_bytes: int) -> Iterator[None]:
    """Within the block this process cannot write past byte ``max_bytes`` of any file (EFBIG).

    The kernel enforces it for root too; Python ignores SIGXFSZ, so the write raises OSError instead
    of killing the process. Keep the block short: it applies to every file the process writes.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@functools.cache
def _names() -> dict[str, str]:
    """Hex digest -> msgid for the msgids the JSON store tests use (of account ``KF``)."""
    pool = [f"{stem}{i}" for stem in ("m", "old", "new", "s", "p") for i in range(3000)]
    pool += ["fresh", "same", "live", "gone", "old", "new", "m9", *"abcdefgh"]
    return {f"{digest(KF, msgid):016x}": msgid for msgid in pool}


def journal_records(directory: Path) -> list[list[Any]]:
    """The journal's records, a done digest of ``KF`` shown as ``[msgid, expires_at]`` (as the lines of
    earlier versions were) so that tests read like the msgids they finished."""
    path = directory / JOURNAL_NAME
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text("ascii").splitlines() if line]
    return [[_names().get(rec[1], rec[1]), rec[2]] if rec[0] == "h" else rec for rec in records]


def journal_ids(directory: Path) -> list[str]:
    return [rec[0] for rec in journal_records(directory) if len(rec) == 2]
