"""``kf/sync_msg`` items, parsed once into typed records (what the rest of the channel reads).

https://developer.work.weixin.qq.com/document/path/94670 (items, origins, events). Parsing never
raises for what WeCom (or a forged item) sends: an item that cannot be handled becomes an
``UnusableItem`` that is recorded as finished with a log line. ``raw`` is kept only so the state store
can persist the item and re-parse it after a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CUSTOMER, SYSTEM, SERVICER = 3, 4, 5  # ``origin`` values
MAX_ID_CHARS = 256


@dataclass(frozen=True, slots=True)
class Item:
    msgid: str
    open_kfid: str
    send_time: int | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class CustomerMessage(Item):
    """origin 3: a WeChat customer wrote; ``body`` is the object named after ``msgtype``."""

    external_userid: str
    msgtype: str
    body: dict[str, Any] = field(repr=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.open_kfid, self.external_userid)


@dataclass(frozen=True, slots=True)
class ServicerMessage(Item):
    """origin 5: a receptionist wrote from the WeCom client."""

    external_userid: str
    servicer_userid: str


@dataclass(frozen=True, slots=True)
class Event(Item):
    """origin 4 (``msgtype: event``); an event type the channel does not act on stays this class."""

    event_type: str
    external_userid: str


@dataclass(frozen=True, slots=True)
class EnterSession(Event):
    welcome_code: str
    scene: str
    scene_param: str


@dataclass(frozen=True, slots=True)
class SendFailed(Event):
    fail_msgid: str
    fail_type: int | None


@dataclass(frozen=True, slots=True)
class SessionStatusChange(Event):
    """change_type 1 taken from the queue, 2 transferred, 3 ended, 4 re-taken (by receptionists)."""

    change_type: int | None
    new_servicer_userid: str
    msg_code: str


@dataclass(frozen=True, slots=True)
class UserRecall(Event):
    recall_msgid: str


@dataclass(frozen=True, slots=True)
class ServicerEvent(Event):
    """servicer_status_change, servicer_recall_msg, reject_customer_msg_switch_change: logged only."""

    servicer_userid: str
    detail: str


@dataclass(frozen=True, slots=True)
class UnusableItem(Item):
    """An item with a msgid that cannot be handled; ``reason`` says why (for the log)."""

    reason: str


def _text(value: Any, limit: int = MAX_ID_CHARS) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_item(raw: Any, open_kfid: str) -> Item | None:
    """The typed item pulled from account ``open_kfid``; None when it has no msgid (nothing could
    record it as handled). The item belongs to the account it was pulled from, whatever it says."""
    if not isinstance(raw, dict):
        return None
    msgid = _text(raw.get("msgid"))
    if not msgid:
        return None
    send_time = _int(raw.get("send_time"))
    origin = _int(raw.get("origin"))
    if raw.get("msgtype") == "event" or origin == SYSTEM:
        return _parse_event(msgid, open_kfid, send_time, raw)
    user = _text(raw.get("external_userid"))
    if not user:
        return UnusableItem(msgid, open_kfid, send_time, raw, "no external_userid")
    if origin == SERVICER:
        return ServicerMessage(msgid, open_kfid, send_time, raw, user, _text(raw.get("servicer_userid")))
    if origin != CUSTOMER:
        return UnusableItem(msgid, open_kfid, send_time, raw, f"origin {repr(raw.get('origin'))[:32]}")
    msgtype = _text(raw.get("msgtype"), 64)
    if not msgtype:
        return UnusableItem(msgid, open_kfid, send_time, raw, "no msgtype")
    body = raw.get(msgtype)
    return CustomerMessage(
        msgid, open_kfid, send_time, raw, user, msgtype, body if isinstance(body, dict) else {}
    )


def _parse_event(msgid: str, open_kfid: str, send_time: int | None, raw: dict[str, Any]) -> Item:
    event = raw.get("event")
    if not isinstance(event, dict):
        return UnusableItem(msgid, open_kfid, send_time, raw, "event without a body")
    kind = _text(event.get("event_type"), 64)
    head = (msgid, open_kfid, send_time, raw, kind)
    user = _text(event.get("external_userid"))
    if kind == "enter_session":
        return EnterSession(
            *head,
            user,
            _text(event.get("welcome_code")),
            _text(event.get("scene")),
            _text(event.get("scene_param")),
        )
    if kind == "msg_send_fail":
        return SendFailed(*head, user, _text(event.get("fail_msgid")), _int(event.get("fail_type")))
    if kind == "session_status_change":
        return SessionStatusChange(
            *head,
            user,
            _int(event.get("change_type")),
            _text(event.get("new_servicer_userid")),
            _text(event.get("msg_code")),
        )
    if kind == "user_recall_msg":
        return UserRecall(*head, user, _text(event.get("recall_msgid")))
    if kind in ("servicer_status_change", "servicer_recall_msg", "reject_customer_msg_switch_change"):
        return ServicerEvent(*head, user, _text(event.get("servicer_userid")), _servicer_detail(kind, event))
    return Event(*head, user)


def _servicer_detail(kind: str, event: dict[str, Any]) -> str:
    if kind == "servicer_status_change":
        return f"status {_int(event.get('status'))}, stop_type {_int(event.get('stop_type'))}"
    if kind == "reject_customer_msg_switch_change":
        return (
            "rejects the customer" if _int(event.get("reject_switch")) == 1 else "accepts the customer again"
        )
    return "recalled a message"
