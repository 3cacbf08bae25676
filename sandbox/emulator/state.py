"""All mutable emulator state behind one lock, with a condition for waiters (no busy polling)."""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from sandbox.emulator.models import (
    Account,
    Customer,
    EventCode,
    Rejection,
    SentMessage,
    Servicer,
    Session,
    UploadedMedia,
)

T = TypeVar("T")
# Bounded for long benchmarks; seq numbers stay monotonic when the oldest entries fall off.
PROTOCOL_LOG_MAX = 10_000
FEED_MAX = 10_000
MAX_WAIT = 60.0


def random_token(
    n: int, alphabet: str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
) -> str:
    """A random string of ``n`` characters from ``alphabet``."""
    return "".join(secrets.choice(alphabet) for _ in range(n))


class EmulatorState:
    """Accounts, customers, per-account message logs, tokens, sends, logs. Guard with ``lock``."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.clock_offset = 0.0
        self.accounts: dict[str, Account] = {}
        self.customers: dict[str, Customer] = {}
        self.servicers: dict[str, Servicer] = {}  # by userid
        self.logs: dict[str, list[dict[str, Any]]] = {}
        self.sessions: dict[tuple[str, str], Session] = {}
        self.codes: dict[str, EventCode] = {}
        self.used_msgids: dict[str, set[str]] = {}
        self.media: dict[str, UploadedMedia] = {}
        self.media_bytes = 0  # total size of ``media``, for the cap
        self.sends: list[SentMessage] = []
        self.rejections: list[Rejection] = []
        self.protocol: deque[dict[str, Any]] = deque(maxlen=PROTOCOL_LOG_MAX)
        self.feed: deque[dict[str, Any]] = deque(maxlen=FEED_MAX)
        self._seq = 0
        self._msg_counter = 0

    def now(self) -> float:
        """The emulator's clock: wall time plus the offset set by ``advance_time``."""
        return time.time() + self.clock_offset

    def notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def next_seq(self) -> int:
        with self.lock:
            self._seq += 1
            return self._seq

    def new_msgid(self, prefix: str = "from_msgid_") -> str:
        """A WeCom-looking message id, unique in this emulator."""
        with self.lock:
            self._msg_counter += 1
            return f"{prefix}{4622416642169452483 + self._msg_counter}{random_token(4, '0123456789')}"

    def session(self, open_kfid: str, external_userid: str) -> Session:
        with self.lock:
            key = (open_kfid, external_userid)
            if key not in self.sessions:
                self.sessions[key] = Session()
            return self.sessions[key]

    def ensure_servicer(self, userid: str) -> Servicer:
        """The receptionist ``userid``; added (receiving) when unknown."""
        with self.lock:
            return self.servicers.setdefault(userid, Servicer(userid))

    def append_item(self, open_kfid: str, item: dict[str, Any]) -> None:
        """Append one sync_msg item to the account's append-only log."""
        with self.changed:
            self.logs.setdefault(open_kfid, []).append(item)
            self.changed.notify_all()

    def add_protocol(self, entry: dict[str, Any], pending: bool = False) -> int:
        """Append a protocol entry. A ``pending`` one (a callback still waiting for its answer) gets
        its seq now and its response from ``complete_protocol``; long-polls stop in front of it."""
        with self.changed:
            entry["seq"] = self.next_seq()
            entry.setdefault("time", time.time())
            if pending:
                entry["pending"] = True
            self.protocol.append(entry)
            self.changed.notify_all()
            return int(entry["seq"])

    def complete_protocol(self, entry: dict[str, Any], response: dict[str, Any]) -> None:
        """Fill in the answer of a pending entry (same seq, same place in the log)."""
        with self.changed:
            # Replaced, not mutated: copies handed out earlier keep a consistent response.
            entry["response"] = response
            entry.pop("pending", None)
            self.changed.notify_all()

    def add_feed(self, entry: dict[str, Any]) -> None:
        with self.changed:
            entry["seq"] = self.next_seq()
            entry.setdefault("time", self.now())
            self.feed.append(entry)
            self.changed.notify_all()

    def wait_until(self, predicate: Callable[[], T], timeout: float) -> T:
        """Wait on the condition until ``predicate()`` is truthy or ``timeout`` passes; returns its value."""
        deadline = time.monotonic() + min(max(timeout, 0.0), 3600.0)
        with self.changed:
            while True:
                value = predicate()
                remaining = deadline - time.monotonic()
                if value or remaining <= 0:
                    return value
                self.changed.wait(remaining)

    def items_since(
        self, source: deque[dict[str, Any]], since: int, wait: float, hold_pending: bool = False
    ) -> list[dict[str, Any]]:
        """Entries of ``source`` with seq > ``since``, long-polling up to ``wait`` seconds. With
        ``hold_pending``, only those before the first pending entry: a reader that sees each seq once
        (the page) then gets that entry complete and still in seq order."""

        def newer() -> list[dict[str, Any]]:
            # Walk back from the newest entry: waiters are woken on every change, keep it cheap.
            found: list[dict[str, Any]] = []
            for entry in reversed(source):
                if entry["seq"] <= since:
                    break
                found.append(dict(entry))
            found.reverse()
            if hold_pending:
                held = next((i for i, entry in enumerate(found) if entry.get("pending")), len(found))
                del found[held:]
            return found

        return self.wait_until(newer, min(wait, MAX_WAIT))
