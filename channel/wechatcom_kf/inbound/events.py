"""System events (origin 4) from ``kf/sync_msg``: takeover, recall, send failures, welcome.

https://developer.work.weixin.qq.com/document/path/94670 (events), /95122 (welcome). Everything but
the welcome is a store write or a log line, handled inline by the account's puller, in order with the
messages around it. The welcome is a network call: it runs on the customer's worker (its
``welcome_code`` is valid for 20 s, so it must not wait behind the pull of other customers).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import KfError, describe_fail_type
from ..logids import short_user, who
from ..oncelog import OncePerKey
from ..outbound.msgid import welcome_msgid
from ..session.recalls import Recalls
from ..session.takeover import Takeover
from .items import EnterSession, Event, SendFailed, ServicerEvent, SessionStatusChange, UserRecall

logger = logging.getLogger(__name__)


class _EventApi(Protocol):
    def send_msg_on_event(self, code: str, msgtype: str, body: dict[str, Any], msgid: str | None) -> str: ...


@dataclass(frozen=True)
class Welcome:
    """The welcome the operator configured: a text, or a menu (``msgmenu``) with quick options."""

    msgtype: str
    body: dict[str, Any]

    @classmethod
    def configured(cls, text: str, menu: dict[str, Any] | None) -> Welcome | None:
        if menu:
            return cls("msgmenu", menu)
        text = text.strip()
        return cls("text", {"content": text}) if text else None


class EventHandler:
    def __init__(self, api: _EventApi, takeover: Takeover, recalls: Recalls, welcome: Welcome | None) -> None:
        self._api = api
        self._takeover = takeover
        self._recalls = recalls
        self._welcome = welcome
        self._unknown = OncePerKey()

    def wants_welcome(self, event: Event) -> bool:
        """True for an ``enter_session`` that allows a welcome, when one is configured."""
        return isinstance(event, EnterSession) and bool(event.welcome_code) and self._welcome is not None

    def handle(self, event: Event) -> None:
        """Act on an event (not the welcome); may raise what the store raises."""
        if isinstance(event, SessionStatusChange):
            self._takeover.on_session_status_change(event.open_kfid, event.external_userid, event.change_type)
        elif isinstance(event, UserRecall):
            if event.recall_msgid:
                logger.info("customer %s recalled %s", short_user(event.external_userid), event.recall_msgid)
                self._recalls.add(event.recall_msgid)
        elif isinstance(event, SendFailed):
            reason = "unknown reason" if event.fail_type is None else describe_fail_type(event.fail_type)
            logger.warning(
                "WeCom could not deliver message %s to %s: %s",
                event.fail_msgid,
                who(event.open_kfid, event.external_userid),
                reason,
            )
        elif isinstance(event, ServicerEvent):
            logger.info("receptionist %s of %s: %s", event.servicer_userid, event.open_kfid, event.detail)
        elif not isinstance(event, EnterSession):
            level = logging.INFO if self._unknown.first(event.event_type) else logging.DEBUG
            logger.log(level, "event type %r ignored (logged once)", event.event_type)

    def send_welcome(self, event: EnterSession) -> None:
        """Send the configured welcome with the event's code; never raises."""
        welcome = self._welcome
        if welcome is None:
            return
        try:
            self._api.send_msg_on_event(
                event.welcome_code, welcome.msgtype, welcome.body, msgid=welcome_msgid(event.welcome_code)
            )
            logger.info("welcome sent to %s", who(event.open_kfid, event.external_userid))
        except KfError as exc:
            # A used msgid means it went out before a restart; an expired code cannot be retried.
            logger.warning("welcome not sent to %s (%s)", event.external_userid, exc)
        except Exception:
            logger.exception("welcome to %s failed", event.external_userid)
