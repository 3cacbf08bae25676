"""Humans win (invariant 6): while a receptionist owns a customer's session the bot stays silent.

The "human owns" flag lives in the state store (shared by instances), per (open_kfid,
external_userid), and expires with WeCom's 48 h session. It is set by a receptionist's message
(origin 5), by ``session_status_change`` 1/2/4 and by a 95018 answer to a send; it is cleared by
``session_status_change`` 3 (session ended). Before answering a flagged customer the session state is
asked once (https://developer.work.weixin.qq.com/document/path/94669): 2 (queued) or 3 (human) keep
the bot silent, anything else clears the flag.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from .errors import KfError

logger = logging.getLogger(__name__)

FLAG_TTL_SECONDS = 48 * 3600
HUMAN_STATES = frozenset({2, 3})  # queued for a receptionist, served by a receptionist
HUMAN_CHANGE_TYPES = frozenset({1, 2, 4})  # taken from the pool, transferred, re-taken
ENDED_CHANGE_TYPE = 3


class _FlagStore(Protocol):
    def get_flag(self, key: str) -> str | None: ...
    def set_flag(self, key: str, value: str | None, ttl_seconds: float | None) -> None: ...


class _StateApi(Protocol):
    def get_service_state(self, open_kfid: str, external_userid: str) -> Any: ...


def flag_key(open_kfid: str, external_userid: str) -> str:
    """Store key of the "a human owns this session" flag."""
    return f"human:{open_kfid}:{external_userid}"


class Takeover:
    """Reads and writes the human-owned flag; asks WeCom when a flagged customer writes again."""

    def __init__(self, store: _FlagStore, api: _StateApi, ttl_seconds: float = FLAG_TTL_SECONDS) -> None:
        self._store = store
        self._api = api
        self._ttl = ttl_seconds

    def mark_human(self, open_kfid: str, external_userid: str, reason: str) -> None:
        """A receptionist owns the session: the bot stays silent for this customer."""
        if not open_kfid or not external_userid:
            return
        logger.info("human owns %s/%s (%s): bot silent", open_kfid, external_userid, reason)
        self._store.set_flag(flag_key(open_kfid, external_userid), reason or "human", self._ttl)

    def release(self, open_kfid: str, external_userid: str, reason: str) -> None:
        """The session is back with the bot (ended, or WeCom says no human serves it)."""
        if not open_kfid or not external_userid:
            return
        if self.is_flagged(open_kfid, external_userid):
            logger.info("session %s/%s back with the bot (%s)", open_kfid, external_userid, reason)
        self._store.set_flag(flag_key(open_kfid, external_userid), None, None)

    def is_flagged(self, open_kfid: str, external_userid: str) -> bool:
        return self._store.get_flag(flag_key(open_kfid, external_userid)) is not None

    def bot_may_answer(self, open_kfid: str, external_userid: str) -> bool:
        """False while a human owns the session; one service_state call only when flagged."""
        if not self.is_flagged(open_kfid, external_userid):
            return True
        try:
            state = int(self._api.get_service_state(open_kfid, external_userid).state)
        except (KfError, ValueError, TypeError, AttributeError) as exc:
            # Unsure who owns the session: talking over a human is the worse mistake.
            logger.warning(
                "service_state of %s/%s unknown (%s): staying silent",
                open_kfid,
                external_userid,
                type(exc).__name__,
            )
            return False
        if state in HUMAN_STATES:
            logger.info(
                "%s/%s is served by a human (state %d): bot silent", open_kfid, external_userid, state
            )
            return False
        self.release(open_kfid, external_userid, f"service state {state}")
        return True

    def on_servicer_message(self, item: dict[str, Any]) -> None:
        """An origin-5 item: a receptionist wrote to the customer from the WeCom client."""
        open_kfid = item.get("open_kfid")
        user = item.get("external_userid")
        if isinstance(open_kfid, str) and isinstance(user, str):
            self.mark_human(open_kfid, user, "receptionist message")

    def on_session_status_change(self, event: dict[str, Any]) -> None:
        """``session_status_change``: 1/2/4 a human took the session, 3 it ended."""
        open_kfid = event.get("open_kfid")
        user = event.get("external_userid")
        if not isinstance(open_kfid, str) or not isinstance(user, str):
            logger.warning("session_status_change without open_kfid/external_userid ignored")
            return
        change_type = event.get("change_type")
        if change_type in HUMAN_CHANGE_TYPES:
            self.mark_human(open_kfid, user, f"session_status_change {change_type}")
        elif change_type == ENDED_CHANGE_TYPE:
            self.release(open_kfid, user, "session ended")
        else:
            logger.info("session_status_change with change_type %r ignored", change_type)
