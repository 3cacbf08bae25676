"""Customer, receptionist and system actions: each appends to an account's log and may fire a callback."""

from __future__ import annotations

import copy
from concurrent.futures import Future
from typing import Any

from sandbox.emulator import feed, media, sessions
from sandbox.emulator.models import SEND_WINDOW, SERVICER_RECEIVING, SERVICER_STOPPED
from sandbox.emulator.state import EmulatorState
from sandbox.emulator.validate import nbytes

MENU_FIELD_MAX = 128  # click.id and click.content: 1..128 bytes (§4)


def check_servicer_status(status: int, stop_type: int) -> None:
    """ValueError unless status is 0 receiving / 1 stopped and stop_type 0 stopped / 1 suspended."""
    if status not in (SERVICER_RECEIVING, SERVICER_STOPPED):
        raise ValueError("status must be 0 (receiving) or 1 (stopped), the kf/servicer/list coding")
    if stop_type not in (0, 1):
        raise ValueError("stop_type must be 0 (stopped) or 1 (temporarily suspended)")


def _check_menu_field(value: str, what: str) -> None:
    if not isinstance(value, str) or not 1 <= nbytes(value) <= MENU_FIELD_MAX:
        raise ValueError(f"{what} must be a string of 1..{MENU_FIELD_MAX} UTF-8 bytes")


class ActionsMixin:
    """Mixed into WeComEmulator; relies on its ``state``, ``_known`` and ``fire_callback``."""

    state: EmulatorState

    def _known(self, open_kfid: str, user: str | None = None) -> None:
        raise NotImplementedError

    def fire_callback(self, open_kfid: str, url: str | None = None, wait: bool = True) -> int | Future[int]:
        raise NotImplementedError

    def _announce(self, open_kfid: str, notify: bool, wait: bool) -> None:
        if notify:
            self.fire_callback(open_kfid, wait=wait)

    def customer_send(
        self,
        open_kfid: str,
        user: str,
        msgtype: str,
        body: dict[str, Any],
        send_time: float | None = None,
        notify: bool = True,
        wait: bool = False,
    ) -> str:
        """Append a customer message (origin 3) of any msgtype; returns its msgid."""
        self._known(open_kfid, user)
        msgid = self._record_customer(open_kfid, user, msgtype, body, send_time, {})
        self._announce(open_kfid, notify, wait)
        return msgid

    def _record_customer(
        self,
        open_kfid: str,
        user: str,
        msgtype: str,
        body: dict[str, Any],
        send_time: float | None,
        feed_extra: dict[str, Any],
    ) -> str:
        """Log item, 48 h window + fresh budget, feed entry; returns the msgid."""
        when = self.state.now() if send_time is None else float(send_time)
        item = self._message_item(open_kfid, user, 3, msgtype, body, when)
        msgid = str(item["msgid"])
        with self.state.lock:
            self.state.append_item(open_kfid, item)
            sessions.record_customer_message(self.state, open_kfid, user, msgid, when)
            feed.entry(self.state, open_kfid, user, "customer", msgtype, body, msgid=msgid, **feed_extra)
        return msgid

    def customer_click(
        self,
        open_kfid: str,
        user: str,
        menu_id: str,
        content: str,
        notify: bool = True,
        wait: bool = False,
    ) -> str:
        """The customer taps a ``click`` item of a msgmenu: it arrives as the customer's ``text``
        ``{content, menu_id}`` (origin 3), a customer message like any other (48 h window, budget).
        https://developer.work.weixin.qq.com/document/path/94670 (text.menu_id), /94677 (msgmenu)"""
        self._known(open_kfid, user)
        _check_menu_field(menu_id, "menu_id")
        _check_menu_field(content, "content")
        body = {"content": content, "menu_id": menu_id}
        msgid = self._record_customer(open_kfid, user, "text", body, None, {"menu_id": menu_id})
        self._announce(open_kfid, notify, wait)
        return msgid

    def _message_item(
        self, open_kfid: str, user: str, origin: int, msgtype: str, body: dict[str, Any], when: float
    ) -> dict[str, Any]:
        return {
            "msgid": self.state.new_msgid(),
            "open_kfid": open_kfid,
            "external_userid": user,
            "send_time": int(when),
            "origin": origin,
            "msgtype": msgtype,
            msgtype: copy.deepcopy(body),
        }

    def customer_text(
        self,
        open_kfid: str,
        user: str,
        text: str,
        notify: bool = True,
        send_time: float | None = None,
        wait: bool = False,
    ) -> str:
        return self.customer_send(open_kfid, user, "text", {"content": text}, send_time, notify, wait)

    def customer_media(
        self,
        open_kfid: str,
        user: str,
        kind: str,
        data: bytes,
        filename: str = "",
        notify: bool = True,
        send_time: float | None = None,
        wait: bool = False,
    ) -> str:
        """A customer image/voice/video/file message; the bytes are stored for media/get."""
        if kind not in feed.MEDIA_KINDS:
            raise ValueError(f"kind must be one of {feed.MEDIA_KINDS}")
        media_id = media.store(self, kind, data, filename)  # type: ignore[arg-type]
        return self.customer_send(open_kfid, user, kind, {"media_id": media_id}, send_time, notify, wait)

    def _event(self, open_kfid: str, event: dict[str, Any]) -> str:
        msgid = self.state.new_msgid()
        body = {"open_kfid": open_kfid, **copy.deepcopy(event)}
        item = {
            "msgid": msgid,
            "send_time": int(self.state.now()),
            "origin": 4,
            "msgtype": "event",
            "event": body,
        }
        self.state.append_item(open_kfid, item)
        return msgid

    def push_event(
        self, open_kfid: str, event: dict[str, Any], notify: bool = True, wait: bool = False
    ) -> str:
        """Append any raw event body (origin 4; ``open_kfid`` added when missing); returns its msgid."""
        self._known(open_kfid)
        msgid = self._event(open_kfid, event)
        user = str(event.get("external_userid", ""))
        feed.system(self.state, open_kfid, user, f"event {event.get('event_type', '?')}")
        self._announce(open_kfid, notify, wait)
        return msgid

    def enter_session(
        self,
        open_kfid: str,
        user: str,
        scene: str = "",
        scene_param: str = "",
        notify: bool = True,
        wait: bool = False,
    ) -> str:
        """Event enter_session; returns the welcome_code ("" when WeCom would not give one)."""
        self._known(open_kfid, user)
        with self.state.lock:
            session = self.state.session(open_kfid, user)
            now = self.state.now()
            # WeCom gives no welcome_code while a message or an earlier welcome is inside the window.
            recent = [t for t in (session.last_msg_time, session.last_welcome_time) if t is not None]
            if any(now - t <= SEND_WINDOW for t in recent):
                code = ""
            else:
                code = sessions.issue_code(self.state, "welcome", open_kfid, user, None)
            session.last_enter = {"scene": scene, "scene_param": scene_param}
            session.last_enter_time = now
            event: dict[str, Any] = {
                "event_type": "enter_session",
                "external_userid": user,
                "scene": scene,
                "scene_param": scene_param,
            }
            if code:
                event["welcome_code"] = code
            self._event(open_kfid, event)
            feed.system(self.state, open_kfid, user, "customer entered the session")
        self._announce(open_kfid, notify, wait)
        return code

    def servicer_text(
        self,
        open_kfid: str,
        user: str,
        text: str,
        servicer_userid: str = "zhangsan",
        notify: bool = True,
        wait: bool = False,
    ) -> str:
        """A receptionist message typed in the WeCom client (origin 5); implies state 3 (no event)."""
        self._known(open_kfid, user)
        item = self._message_item(open_kfid, user, 5, "text", {"content": text}, self.state.now())
        item["servicer_userid"] = servicer_userid
        msgid = item["msgid"]
        with self.state.lock:
            self.state.ensure_servicer(servicer_userid)
            session = self.state.session(open_kfid, user)
            session.state, session.servicer_userid = 3, servicer_userid
            self.state.append_item(open_kfid, item)
            feed.entry(
                self.state,
                open_kfid,
                user,
                "servicer",
                "text",
                {"content": text},
                msgid=msgid,
                servicer_userid=servicer_userid,
            )
        self._announce(open_kfid, notify, wait)
        return msgid

    def take_over(
        self,
        open_kfid: str,
        user: str,
        servicer_userid: str = "zhangsan",
        notify: bool = True,
        wait: bool = False,
    ) -> None:
        """A receptionist takes the session: state 3, event session_status_change 1 (or 2 if transferred)."""
        self._known(open_kfid, user)
        with self.state.lock:
            self.state.ensure_servicer(servicer_userid)
            session = self.state.session(open_kfid, user)
            old = session.servicer_userid if session.state == 3 else None
            event: dict[str, Any] = {
                "event_type": "session_status_change",
                "external_userid": user,
                "change_type": 2 if old else 1,
                "new_servicer_userid": servicer_userid,
            }
            if old:
                event["old_servicer_userid"] = old
            else:
                event["msg_code"] = sessions.issue_code(self.state, "pool", open_kfid, user, 3)
                session.pool_code_issued = True
            session.state, session.servicer_userid = 3, servicer_userid
            self._event(open_kfid, event)
            feed.system(self.state, open_kfid, user, f"{servicer_userid} took over the session")
        self._announce(open_kfid, notify, wait)

    def set_servicer_status(
        self,
        userid: str,
        status: int,
        stop_type: int = 0,
        *,
        open_kfid: str | None = None,
        notify: bool = True,
        wait: bool = False,
    ) -> str | None:
        """A receptionist starts (0) or stops (1) receiving; ``stop_type`` 1 = temporarily suspended.
        With ``open_kfid``, that account also gets the event servicer_status_change (coded 1 receiving,
        2 stopped) and its msgid is returned. Unknown userid → KeyError.
        https://developer.work.weixin.qq.com/document/path/94645, /94670 (servicer_status_change)"""
        check_servicer_status(status, stop_type)
        if open_kfid is not None:
            self._known(open_kfid)
        with self.state.changed:
            entry = self.state.servicers.get(userid)
            if entry is None:
                raise KeyError(f"unknown servicer {userid}")
            entry.status = status
            entry.stop_type = stop_type if status == SERVICER_STOPPED else 0
            self.state.changed.notify_all()
        if open_kfid is None:
            return None
        event = {
            "event_type": "servicer_status_change",
            "servicer_userid": userid,
            "status": 1 if status == SERVICER_RECEIVING else 2,
            "stop_type": stop_type if status == SERVICER_STOPPED else 0,
        }
        return self.push_event(open_kfid, event, notify=notify, wait=wait)

    def hand_back(self, open_kfid: str, user: str, notify: bool = True, wait: bool = False) -> None:
        """The receptionist ends the session: state 4, session_status_change 3 with a closing msg_code."""
        self._known(open_kfid, user)
        with self.state.lock:
            session = self.state.session(open_kfid, user)
            event: dict[str, Any] = {
                "event_type": "session_status_change",
                "external_userid": user,
                "change_type": 3,
                "old_servicer_userid": session.servicer_userid or "",
            }
            session.state, session.servicer_userid = 4, None
            event["msg_code"] = sessions.issue_code(self.state, "closing", open_kfid, user, 4)
            self._event(open_kfid, event)
            feed.system(self.state, open_kfid, user, "session ended by the receptionist")
        self._announce(open_kfid, notify, wait)

    def recall(
        self, open_kfid: str, user: str, recall_msgid: str, notify: bool = True, wait: bool = False
    ) -> str:
        """The customer recalls one of their messages: event user_recall_msg."""
        self._known(open_kfid, user)
        event = {"event_type": "user_recall_msg", "external_userid": user, "recall_msgid": recall_msgid}
        msgid = self._event(open_kfid, event)
        feed.system(self.state, open_kfid, user, "customer recalled a message", recall_msgid=recall_msgid)
        self._announce(open_kfid, notify, wait)
        return msgid

    def send_fail(
        self,
        open_kfid: str,
        user: str,
        fail_msgid: str,
        fail_type: int = 0,
        notify: bool = True,
        wait: bool = False,
    ) -> str:
        """Event msg_send_fail for a message the app sent."""
        event = {
            "event_type": "msg_send_fail",
            "external_userid": user,
            "fail_msgid": fail_msgid,
            "fail_type": fail_type,
        }
        return self.push_event(open_kfid, event, notify=notify, wait=wait)
