"""Per-session conversation memory, bounded by turns, characters, idle time and number of sessions."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Turn:
    user: str
    assistant: str

    @property
    def size(self) -> int:
        return len(self.user) + len(self.assistant)


@dataclass
class _Session:
    last_active: float
    turns: list[Turn] = field(default_factory=list)


class SessionMemory:
    """Thread-safe store of recent turns per session id.

    Sessions are kept in least-recently-used order, so purging idle ones and evicting the oldest when
    `max_sessions` is reached both pop from the front: memory stays flat whatever the traffic.
    """

    def __init__(
        self,
        max_turns: int = 10,
        max_chars: int = 4000,
        expires_in_seconds: float = 3600.0,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_turns = max(0, int(max_turns))
        self.max_chars = max(0, int(max_chars))
        self.expires_in_seconds = expires_in_seconds
        self.max_sessions = max(1, int(max_sessions))
        self._clock = clock
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._lock = threading.Lock()

    def history(self, session_id: str, reserve_chars: int = 0) -> list[Turn]:
        """The newest turns (oldest first) whose size fits `max_chars - reserve_chars`."""
        with self._lock:
            self._purge_expired()
            session = self._sessions.get(session_id)
            if session is None:
                return []
            budget = self.max_chars - max(0, reserve_chars)
            kept: list[Turn] = []
            for turn in reversed(session.turns):
                if turn.size > budget:
                    break
                budget -= turn.size
                kept.append(turn)
            kept.reverse()
            return kept

    def add_turn(self, session_id: str, user: str, assistant: str) -> None:
        """Appends a turn, then drops the oldest turns beyond the turn and size limits."""
        with self._lock:
            self._purge_expired()
            now = self._clock()
            session = self._sessions.pop(session_id, None) or _Session(last_active=now)
            session.last_active = now
            session.turns.append(Turn(user, assistant))
            _trim(session.turns, self.max_turns, self.max_chars)
            self._sessions[session_id] = session  # re-inserted: now the most recently used
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)

    def clear(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def clear_all(self) -> None:
        with self._lock:
            self._sessions.clear()

    def __len__(self) -> int:
        with self._lock:
            self._purge_expired()
            return len(self._sessions)

    def _purge_expired(self) -> None:
        deadline = self._clock() - self.expires_in_seconds
        while self._sessions:
            oldest_id, oldest = next(iter(self._sessions.items()))
            if oldest.last_active > deadline:
                break
            del self._sessions[oldest_id]


class SessionValues:
    """One value per session id (e.g. a Dify conversation id), with the same bounds as SessionMemory:
    forgotten after ``expires_in_seconds`` without a ``set``, oldest evicted beyond ``max_sessions``."""

    def __init__(
        self,
        expires_in_seconds: float = 3600.0,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.expires_in_seconds = expires_in_seconds
        self.max_sessions = max(1, int(max_sessions))
        self._clock = clock
        self._values: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: str) -> str | None:
        with self._lock:
            self._purge_expired()
            found = self._values.get(session_id)
            return found[1] if found else None

    def set(self, session_id: str, value: str) -> None:
        with self._lock:
            self._purge_expired()
            self._values.pop(session_id, None)
            self._values[session_id] = (self._clock(), value)  # now the most recently used
            while len(self._values) > self.max_sessions:
                self._values.popitem(last=False)

    def clear(self, session_id: str) -> None:
        with self._lock:
            self._values.pop(session_id, None)

    def clear_all(self) -> None:
        with self._lock:
            self._values.clear()

    def __len__(self) -> int:
        with self._lock:
            self._purge_expired()
            return len(self._values)

    def _purge_expired(self) -> None:
        deadline = self._clock() - self.expires_in_seconds
        while self._values:
            oldest_id, (last_set, _) = next(iter(self._values.items()))
            if last_set > deadline:
                break
            del self._values[oldest_id]


class _Clearable(Protocol):
    def clear(self, session_id: str) -> None: ...

    def clear_all(self) -> None: ...


class CowSessions:
    """The part of CoW's ``SessionManager`` that upstream plugins call, over a session store.

    godcmd's ``#reset`` calls ``bot.sessions.clear_session(session_id)`` and ``#resetall`` calls
    ``bot.sessions.clear_all_session()`` (CoW 1.7.6 to CowAgent 2.1.7 alike).
    """

    def __init__(self, memory: _Clearable) -> None:
        self.memory = memory

    def clear_session(self, session_id: object) -> None:
        self.memory.clear(str(session_id))

    def clear_all_session(self) -> None:
        self.memory.clear_all()


def _trim(turns: list[Turn], max_turns: int, max_chars: int) -> None:
    while len(turns) > max_turns:
        turns.pop(0)
    total = sum(t.size for t in turns)
    while turns and total > max_chars:
        total -= turns.pop(0).size
