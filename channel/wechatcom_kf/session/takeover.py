"""Humans win (invariant 6): while a receptionist owns a customer's session the bot stays silent.

The "human owns" flag is a value in the state store (shared by instances), per (open_kfid,
external_userid), and expires with WeCom's 48 h session. It is set by a receptionist's message
(origin 5), by ``session_status_change`` 1/2/4 and by a 95018 answer to a send; it is cleared by
``session_status_change`` 3 (session ended). Before answering a flagged customer the session state is
asked once (https://developer.work.weixin.qq.com/document/path/94669): 2 (queued) or 3 (human) keep
the bot silent, anything else clears the flag.

Before its first reply in a session the bot claims it: ``service_state/trans`` 0 → 1 (由智能助手接待),
so WeCom does not hand the session to a receptionist behind the bot's back (a cause of 95018). A claim
is remembered per customer for 48 h (bounded) and forgotten when the session ends or a human takes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import KfError
from ..expiring import ExpiringKeys
from ..logids import who
from ..metrics import NO_METRICS, KfMetrics, takeover_cause
from ..redaction import redact
from ..store.base import KeyValues

logger = logging.getLogger(__name__)

FLAG_TTL_SECONDS = 48 * 3600
HUMAN_STATES = frozenset({2, 3})  # queued for a receptionist, served by a receptionist
HUMAN_CHANGE_TYPES = frozenset({1, 2, 4})  # taken from the pool, transferred, re-taken
ENDED_CHANGE_TYPE = 3
BOT_STATE = 1  # 由智能助手接待
TRANS_NOT_ALLOWED = 95016
CLAIM_TTL_SECONDS = 48 * 3600  # one WeCom session lasts at most 48 h after the customer's message
MAX_CLAIMS = 100_000


class _StateApi(Protocol):
    def get_service_state(self, open_kfid: str, external_userid: str) -> Any: ...
    def trans_service_state(
        self, open_kfid: str, external_userid: str, service_state: int, servicer_userid: str | None = None
    ) -> str | None: ...


def flag_key(open_kfid: str, external_userid: str) -> str:
    """Store key of the "a human owns this session" flag."""
    return f"human:{open_kfid}:{external_userid}"


class Takeover:
    """Reads and writes the human-owned flag; asks WeCom when a flagged customer writes again."""

    def __init__(
        self,
        store: KeyValues,
        api: _StateApi,
        ttl_seconds: float = FLAG_TTL_SECONDS,
        *,
        max_claims: int = MAX_CLAIMS,
        clock: Callable[[], float] = time.monotonic,
        metrics: KfMetrics = NO_METRICS,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._api = api
        self._ttl = ttl_seconds
        self._claims = ExpiringKeys(CLAIM_TTL_SECONDS, max_claims, clock)

    def mark_human(self, open_kfid: str, external_userid: str, reason: str) -> None:
        """A receptionist owns the session: the bot stays silent for this customer."""
        if not open_kfid or not external_userid:
            return
        logger.info("human owns %s (%s): bot silent", who(open_kfid, external_userid), reason)
        self._metrics.takeovers.labels(takeover_cause(reason)).inc()
        self._claims.discard((open_kfid, external_userid))
        self._store.set_value(flag_key(open_kfid, external_userid), reason or "human", self._ttl)

    def release(self, open_kfid: str, external_userid: str, reason: str) -> None:
        """The session is back with the bot (ended, or WeCom says no human serves it)."""
        if not open_kfid or not external_userid:
            return
        self._claims.discard((open_kfid, external_userid))
        if self.is_flagged(open_kfid, external_userid):
            logger.info("session %s back with the bot (%s)", who(open_kfid, external_userid), reason)
            self._metrics.releases.inc()
            self._store.set_value(flag_key(open_kfid, external_userid), None, None)

    def is_flagged(self, open_kfid: str, external_userid: str) -> bool:
        return self._store.get_value(flag_key(open_kfid, external_userid)) is not None

    def bot_may_answer(self, open_kfid: str, external_userid: str) -> bool:
        """False while a human owns the session; one service_state call only when flagged."""
        if not self.is_flagged(open_kfid, external_userid):
            return True
        state = self._service_state(open_kfid, external_userid)
        if state is None:
            return False
        if state in HUMAN_STATES:
            logger.info(
                "%s is served by a human (state %d): bot silent", who(open_kfid, external_userid), state
            )
            return False
        self.release(open_kfid, external_userid, f"service state {state}")
        return True

    def _service_state(self, open_kfid: str, external_userid: str) -> int | None:
        """WeCom's service_state of the session, or None (logged) when it cannot be read."""
        try:
            return int(self._api.get_service_state(open_kfid, external_userid).state)
        except (KfError, ValueError, TypeError, AttributeError) as exc:
            # Unsure who owns the session: the callers stay silent, talking over a human is worse.
            logger.warning(
                "service_state of %s unknown (%s): staying silent",
                who(open_kfid, external_userid),
                type(exc).__name__,
            )
            return None

    def claim_for_bot(self, open_kfid: str, external_userid: str) -> bool:
        """Move the session to state 1 once per session, before the bot's first reply (doc 94669).

        False when WeCom says a human owns it (the bot stays silent); any other failure is logged and
        the bot answers anyway (sending from state 0 is allowed).
        """
        key = (open_kfid, external_userid)
        if key in self._claims:
            return True
        try:
            self._api.trans_service_state(open_kfid, external_userid, BOT_STATE)
        except KfError as exc:
            if exc.errcode == TRANS_NOT_ALLOWED:
                return self._after_refused_claim(open_kfid, external_userid)
            logger.warning(
                "claiming %s for the bot failed (%s); answering anyway",
                who(open_kfid, external_userid),
                redact(exc),
            )
            return True
        logger.debug("session %s claimed for the bot", who(open_kfid, external_userid))
        self._claims.add(key)
        return True

    def _after_refused_claim(self, open_kfid: str, external_userid: str) -> bool:
        """95016: the session is in a state the bot cannot take (2, 3 or 4): ask which."""
        state = self._service_state(open_kfid, external_userid)
        if state is None:
            return False
        if state in HUMAN_STATES:
            self.mark_human(open_kfid, external_userid, f"service state {state}")
            return False
        if state == BOT_STATE:
            self._claims.add((open_kfid, external_userid))
        return True

    def on_session_status_change(self, open_kfid: str, external_userid: str, change_type: int | None) -> None:
        """``session_status_change``: 1/2/4 a human took the session, 3 it ended."""
        if not open_kfid or not external_userid:
            logger.warning("session_status_change without open_kfid/external_userid ignored")
            return
        if change_type in HUMAN_CHANGE_TYPES:
            self.mark_human(open_kfid, external_userid, f"session_status_change {change_type}")
        elif change_type == ENDED_CHANGE_TYPE:
            self.release(open_kfid, external_userid, "session ended")
        else:
            logger.info("session_status_change with change_type %r ignored", change_type)
