"""System events (origin 4) from ``kf/sync_msg``: welcome, send failures, takeover, recall.

Event reference: https://developer.work.weixin.qq.com/document/path/94670
Everything here is a store write or a log line, except the welcome message, which goes out on a
small pool at once: its ``welcome_code`` is valid for 20 s only, so it must not wait behind the bot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Protocol

from .errors import KfError, describe_fail_type
from .expiring import ExpiringKeys
from .outbound.msgid import welcome_msgid
from .takeover import Takeover

logger = logging.getLogger(__name__)

MAX_RECALLS = 10_000
RECALL_TTL_SECONDS = 48 * 3600


class _EventApi(Protocol):
    def send_msg_on_event(self, code: str, msgtype: str, body: dict[str, Any], msgid: str | None) -> str: ...


class Recalls:
    """Msgids the customer recalled; their turns are not answered if not sent yet.

    Bounded in count and time: a recall only matters until the turn is answered, which is long
    before WeCom's 48 h send window closes.
    """

    def __init__(self, max_entries: int = MAX_RECALLS, ttl_seconds: float = RECALL_TTL_SECONDS) -> None:
        self._ids = ExpiringKeys(ttl_seconds, max_entries)

    def add(self, msgid: str) -> None:
        self._ids.add(msgid)

    def any_recalled(self, msgids: list[str]) -> bool:
        return any(m in self._ids for m in msgids)

    def __len__(self) -> int:
        return len(self._ids)


class EventHandler:
    """Handles one event item; ``finish(msgid)`` is called once the item is fully processed."""

    def __init__(
        self,
        api: _EventApi,
        takeover: Takeover,
        recalls: Recalls,
        welcome_text: str,
        executor: Executor,
        finish: Callable[[str], None],
    ) -> None:
        self._api = api
        self._takeover = takeover
        self._recalls = recalls
        self._welcome_text = welcome_text.strip()
        self._executor = executor
        self._finish = finish
        self._unknown_seen: set[str] = set()
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "msg_send_fail": self._on_send_fail,
            "session_status_change": self._takeover.on_session_status_change,
            "user_recall_msg": self._on_user_recall,
            "servicer_status_change": self._on_servicer_status,
            "reject_customer_msg_switch_change": self._on_reject_switch,
            "servicer_recall_msg": self._on_servicer_recall,
        }

    def handle(self, item: dict[str, Any]) -> None:
        """Process an origin-4 item; never raises."""
        msgid = str(item.get("msgid", ""))
        event = item.get("event")
        if not isinstance(event, dict):
            logger.warning("event item %s has no event body; ignored", msgid)
            self._finish(msgid)
            return
        event_type = str(event.get("event_type", ""))
        if event_type == "enter_session" and self._welcome_wanted(event):
            self._executor.submit(self._send_welcome, msgid, event)
            return
        try:
            handler = self._handlers.get(event_type)
            if handler is not None:
                handler(event)
            elif event_type != "enter_session":
                self._log_unknown(event_type)
        except Exception:
            logger.exception("handling event %s (%s) failed", msgid, event_type)
        self._finish(msgid)

    def _welcome_wanted(self, event: dict[str, Any]) -> bool:
        code = event.get("welcome_code")
        return bool(self._welcome_text) and isinstance(code, str) and bool(code)

    def _send_welcome(self, msgid: str, event: dict[str, Any]) -> None:
        code = str(event["welcome_code"])
        try:
            self._api.send_msg_on_event(
                code, "text", {"content": self._welcome_text}, msgid=welcome_msgid(code)
            )
            logger.info("welcome sent to %s/%s", event.get("open_kfid"), event.get("external_userid"))
        except KfError as exc:
            # A duplicate msgid means it went out before a restart; an expired code cannot be retried.
            logger.warning("welcome not sent to %s (%s)", event.get("external_userid"), exc)
        except Exception:
            logger.exception("welcome to %s failed", event.get("external_userid"))
        finally:
            self._finish(msgid)

    def _on_send_fail(self, event: dict[str, Any]) -> None:
        fail_type = event.get("fail_type")
        reason = describe_fail_type(fail_type) if isinstance(fail_type, int) else "unknown reason"
        logger.warning(
            "WeCom could not deliver message %s to %s/%s: %s",
            event.get("fail_msgid"),
            event.get("open_kfid"),
            event.get("external_userid"),
            reason,
        )

    def _on_user_recall(self, event: dict[str, Any]) -> None:
        recalled = event.get("recall_msgid")
        if isinstance(recalled, str) and recalled:
            logger.info("customer %s recalled %s", event.get("external_userid"), recalled)
            self._recalls.add(recalled)

    def _on_servicer_recall(self, event: dict[str, Any]) -> None:
        logger.info(
            "receptionist %s recalled a message to %s",
            event.get("servicer_userid"),
            event.get("external_userid"),
        )

    def _on_servicer_status(self, event: dict[str, Any]) -> None:
        logger.info(
            "receptionist %s of %s: status %s, stop_type %s",
            event.get("servicer_userid"),
            event.get("open_kfid"),
            event.get("status"),
            event.get("stop_type"),
        )

    def _on_reject_switch(self, event: dict[str, Any]) -> None:
        logger.info(
            "receptionist %s %s messages of %s",
            event.get("servicer_userid"),
            "rejects" if event.get("reject_switch") == 1 else "accepts again",
            event.get("external_userid"),
        )

    def _log_unknown(self, event_type: str) -> None:
        if event_type in self._unknown_seen or len(self._unknown_seen) >= 64:
            logger.debug("event %r ignored", event_type)
            return
        self._unknown_seen.add(event_type)
        logger.info("unknown event type %r ignored (logged once)", event_type)
