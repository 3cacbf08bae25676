"""Who is asking: the customer's nickname from ``kf/customer/batchget``, cached and bounded.

https://developer.work.weixin.qq.com/document/path/95159. One call per customer per day at most; a
failed lookup is remembered for a few minutes so a WeCom outage does not cost a call per message.

Lookups are batched: while one call is out, the customers asked for meanwhile wait, and the next call
asks for up to 100 of them at once. Nobody waits for a timer: alone, a lookup is one call at once; 500
new customers at 9:00 cost a handful of calls instead of 500 (a corp has 10,000 calls a minute per
API, and each call costs the channel CPU on the reply's critical path).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import KfError
from ..expiring import ExpiringKeys, ExpiringMap

logger = logging.getLogger(__name__)

INFO_TTL_SECONDS = 86400.0
FAILED_TTL_SECONDS = 300.0
MAX_CUSTOMERS = 50_000
MAX_NICKNAME_CHARS = 64
BATCH_MAX = 100  # external_userid_list holds 1 to 100 ids


class _CustomerApi(Protocol):
    def batchget_customer(self, external_userids: list[str]) -> dict[str, dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class CustomerInfo:
    external_userid: str
    nickname: str
    gender: int  # 0 unknown, 1 male, 2 female

    def as_context(self) -> dict[str, Any]:
        return {"external_userid": self.external_userid, "nickname": self.nickname, "gender": self.gender}


class CustomerDirectory:
    def __init__(self, api: _CustomerApi, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._api = api
        self._known: ExpiringMap[CustomerInfo] = ExpiringMap(INFO_TTL_SECONDS, MAX_CUSTOMERS, clock)
        self._failed = ExpiringKeys(FAILED_TTL_SECONDS, MAX_CUSTOMERS, clock)
        self._cond = threading.Condition()
        self._asked: dict[str, None] = {}  # ids waiting for a call, in the order asked
        self._calling = False  # a batchget is out
        self.calls = 0  # batchget calls made, for tests and benchmarks

    def lookup(self, external_userid: str) -> CustomerInfo | None:
        """The customer's profile, or None when WeCom does not give it now (never raises)."""
        with self._cond:
            answered, info = self._cached(external_userid)
            if answered:
                return info
            self._asked[external_userid] = None
            while external_userid in self._asked and self._calling:
                self._cond.wait()
            if external_userid not in self._asked:  # the call before ours answered for us too
                return self._cached(external_userid)[1]
            batch = [external_userid, *(u for u in self._asked if u != external_userid)][:BATCH_MAX]
            self._calling = True
        try:
            found = self._fetch(batch)
        finally:
            with self._cond:
                for user in batch:
                    self._asked.pop(user, None)
                self._calling = False
                self._cond.notify_all()
        return found.get(external_userid)

    def _cached(self, external_userid: str) -> tuple[bool, CustomerInfo | None]:
        """(answered, the profile): answered when the profile is known or a lookup failed recently."""
        info = self._known.get(external_userid)
        if info is not None:
            return True, info
        return external_userid in self._failed, None

    def _fetch(self, batch: list[str]) -> dict[str, CustomerInfo]:
        """Ask WeCom for ``batch`` and remember what it said about each (never raises)."""
        self.calls += 1
        try:
            raws = self._api.batchget_customer(batch)
        except KfError as err:
            logger.info("nicknames of %d customer(s) unknown (errcode %s)", len(batch), err.errcode)
            raws = {}
        found: dict[str, CustomerInfo] = {}
        for user in batch:
            raw = raws.get(user)
            if raw is None:
                self._failed.add(user)
                continue
            found[user] = CustomerInfo(user, _nickname(raw.get("nickname")), _gender(raw.get("gender")))
            self._known.set(user, found[user])
        return found


def _nickname(value: Any) -> str:
    text = value if isinstance(value, str) else ""
    return "".join(ch for ch in text if ch.isprintable())[:MAX_NICKNAME_CHARS]


def _gender(value: Any) -> int:
    return value if isinstance(value, int) and value in (0, 1, 2) else 0
