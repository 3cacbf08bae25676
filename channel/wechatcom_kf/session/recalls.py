"""Msgids the customer recalled (``user_recall_msg``): their turns are not answered if not sent yet.

Bounded in count and time: a recall only matters until the turn is answered, long before WeCom's 48 h
send window closes. In memory: a recall that arrives after a restart finds its turn already answered
or re-pulled together with the recall event (which comes after the message in the same account).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..expiring import ExpiringKeys

MAX_RECALLS = 10_000
RECALL_TTL_SECONDS = 48 * 3600


class Recalls:
    def __init__(self, max_entries: int = MAX_RECALLS, ttl_seconds: float = RECALL_TTL_SECONDS) -> None:
        self._ids = ExpiringKeys(ttl_seconds, max_entries)

    def add(self, msgid: str) -> None:
        self._ids.add(msgid)

    def any_recalled(self, msgids: Iterable[str]) -> bool:
        return any(m in self._ids for m in msgids)

    def __len__(self) -> int:
        return len(self._ids)
