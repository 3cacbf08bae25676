"""Who is asking: the customer's nickname from ``kf/customer/batchget``, cached and bounded.

https://developer.work.weixin.qq.com/document/path/95159. One call per customer per day at most; a
failed lookup is remembered for a few minutes so a WeCom outage does not cost a call per message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import KfError
from ..expiring import ExpiringMap

logger = logging.getLogger(__name__)

INFO_TTL_SECONDS = 86400.0
FAILED_TTL_SECONDS = 300.0
MAX_CUSTOMERS = 50_000
MAX_NICKNAME_CHARS = 64


class _CustomerApi(Protocol):
    def batchget_customer(self, external_userids: list[str]) -> dict[str, dict[str, Any]]: ...


@dataclass(frozen=True)
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
        self._failed: ExpiringMap[bool] = ExpiringMap(FAILED_TTL_SECONDS, MAX_CUSTOMERS, clock)

    def lookup(self, external_userid: str) -> CustomerInfo | None:
        """The customer's profile, or None when WeCom does not give it now (never raises)."""
        info = self._known.get(external_userid)
        if info is not None or self._failed.get(external_userid):
            return info
        try:
            raw = self._api.batchget_customer([external_userid]).get(external_userid)
        except KfError as err:
            logger.info("nickname of %s unknown (errcode %s)", external_userid, err.errcode)
            raw = None
        if raw is None:
            self._failed.set(external_userid, True)
            return None
        info = CustomerInfo(external_userid, _nickname(raw.get("nickname")), _gender(raw.get("gender")))
        self._known.set(external_userid, info)
        return info


def _nickname(value: Any) -> str:
    text = value if isinstance(value, str) else ""
    return "".join(ch for ch in text if ch.isprintable())[:MAX_NICKNAME_CHARS]


def _gender(value: Any) -> int:
    return value if isinstance(value, int) and value in (0, 1, 2) else 0
