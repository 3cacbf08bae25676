"""kf/sync_msg, kf/send_msg and kf/send_msg_on_event handlers (fact sheet §2, §4, §5)."""

from __future__ import annotations

import base64
import copy
import logging
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from sandbox.emulator import sessions, validate
from sandbox.emulator.models import SYNC_WINDOW, ApiError, ApiRequest, SentMessage

if TYPE_CHECKING:
    from sandbox.emulator.emulator import WeComEmulator

logger = logging.getLogger(__name__)
MAX_LIMIT = 1000


def encode_cursor(salt: bytes, position: int) -> str:
    return base64.urlsafe_b64encode(salt + position.to_bytes(8, "big")).decode("ascii").rstrip("=")


def decode_cursor(salt: bytes, cursor: str, log_len: int) -> int:
    """Position encoded in ``cursor``; a foreign or damaged cursor → 40058 (errcode UNCONFIRMED)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except ValueError:
        raise ApiError(40058, "invalid cursor") from None
    if len(raw) != len(salt) + 8 or raw[: len(salt)] != salt:
        raise ApiError(40058, "invalid cursor")
    position = int.from_bytes(raw[len(salt) :], "big")
    if position > log_len:
        raise ApiError(40058, "invalid cursor")
    return position


def check_account(emu: WeComEmulator, open_kfid: Any) -> str:
    if not isinstance(open_kfid, str) or not open_kfid:
        raise ApiError(40058, "missing open_kfid")
    if open_kfid not in emu.state.accounts:
        raise ApiError(95004, "open_kfid not exist")
    return open_kfid


def check_customer(emu: WeComEmulator, data: dict[str, Any], field: str) -> str:
    """The external_userid in ``data[field]``; 40096 when the emulator has never seen that customer."""
    user = data.get(field)
    if not isinstance(user, str) or not user:
        raise ApiError(40058, f"missing {field}")
    if user not in emu.state.customers:
        raise ApiError(40096, "invalid external_userid")
    return user


def _check_sync_token(emu: WeComEmulator, token: Any, open_kfid: str) -> None:
    if token:
        if not isinstance(token, str) or len(token.encode("utf-8")) > 128:
            raise ApiError(95007, "invalid msg token")
        emu.tokens.check_sync_token(token, open_kfid, emu.state.now())
        return
    if emu.sync_token_required:
        raise ApiError(95007, "invalid msg token")
    emu.note_tokenless_sync(open_kfid)


def sync_msg(emu: WeComEmulator, req: ApiRequest) -> dict[str, Any]:
    """https://developer.work.weixin.qq.com/document/path/94670"""
    data = req.json()
    open_kfid = check_account(emu, data.get("open_kfid"))
    _check_sync_token(emu, data.get("token"), open_kfid)
    limit = data.get("limit") or MAX_LIMIT
    if not isinstance(limit, int) or limit < 0 or limit > MAX_LIMIT:
        raise ApiError(40058, "invalid limit")
    if emu.page_size_cap:
        limit = min(limit, emu.page_size_cap)
    cursor = data.get("cursor") or ""
    if not isinstance(cursor, str) or len(cursor.encode("utf-8")) > 64:
        raise ApiError(40058, "invalid cursor")
    state = emu.state
    with state.lock:
        log = state.logs.get(open_kfid, [])
        position = decode_cursor(emu.cursor_salt, cursor, len(log)) if cursor else 0
        oldest = state.now() - SYNC_WINDOW
        page: list[dict[str, Any]] = []
        while position < len(log) and len(page) < limit:
            if log[position]["send_time"] >= oldest:
                page.append(copy.deepcopy(log[position]))
            position += 1
        has_more = any(item["send_time"] >= oldest for item in log[position:])
        next_cursor = encode_cursor(emu.cursor_salt, position)
    return {
        "errcode": 0,
        "errmsg": "ok",
        "next_cursor": next_cursor,
        "has_more": int(has_more),
        "msg_list": page,
    }


def _claim_msgid(emu: WeComEmulator, open_kfid: str, msgid: str | None) -> str:
    """Reserve the client msgid (unique per account) or generate one. Caller holds the lock."""
    used = emu.state.used_msgids.setdefault(open_kfid, set())
    if msgid is None:
        msgid = emu.state.new_msgid("msg")
    elif msgid in used:
        raise ApiError(40058, "msgid exists")
    used.add(msgid)
    return msgid


def _message_of(
    emu: WeComEmulator, data: dict[str, Any], allowed: Collection[str]
) -> tuple[str, str | None, dict[str, Any]]:
    """(msgtype, client msgid or None, body) of a send request, each checked as WeCom does."""
    msgtype = data.get("msgtype")
    if not isinstance(msgtype, str) or msgtype not in allowed:
        raise ApiError(40058, "invalid msgtype")
    msgid = validate.check_msgid(data.get("msgid"))
    body = validate.body_of(data, msgtype)
    validate.check_body(msgtype, body, emu.media_kind)
    return msgtype, msgid, body


def _record_send(emu: WeComEmulator, sent: SentMessage) -> None:
    with emu.state.changed:
        emu.state.sends.append(sent)
        emu.state.changed.notify_all()
    emu.feed_send(sent)


def send_msg(emu: WeComEmulator, req: ApiRequest) -> dict[str, Any]:
    """https://developer.work.weixin.qq.com/document/path/94677"""
    data = req.json()
    open_kfid = check_account(emu, data.get("open_kfid"))
    touser = check_customer(emu, data, "touser")
    msgtype, msgid, body = _message_of(emu, data, validate.SEND_TYPES)
    state = emu.state
    with state.lock:
        if msgid is not None and msgid in state.used_msgids.get(open_kfid, set()):
            # Checked before the budget so a resend after a crash is recognisable as a duplicate.
            raise ApiError(40058, "msgid exists")
        session = sessions.check_can_send(state, open_kfid, touser)
        msgid = _claim_msgid(emu, open_kfid, msgid)
        session.sends_since += 1
        sent = SentMessage(
            "send_msg",
            open_kfid,
            touser,
            msgid,
            msgtype,
            copy.deepcopy(body),
            state.now(),
            session.last_msgid,
        )
    _record_send(emu, sent)
    logger.debug("send_msg to %s: %s", touser, msgtype)
    return {"errcode": 0, "errmsg": "ok", "msgid": msgid}


def send_msg_on_event(emu: WeComEmulator, req: ApiRequest) -> dict[str, Any]:
    """https://developer.work.weixin.qq.com/document/path/95122"""
    data = req.json()
    code = data.get("code")
    if not isinstance(code, str) or not code:
        raise ApiError(40058, "missing code")
    msgtype, msgid, body = _message_of(emu, data, ("text", "msgmenu"))
    state = emu.state
    with state.lock:
        entry = state.codes.get(code)
        if entry is not None and msgid is not None and msgid in state.used_msgids.get(entry.open_kfid, set()):
            raise ApiError(40058, "msgid exists")
        entry = sessions.take_code(state, code, msgtype)
        msgid = _claim_msgid(emu, entry.open_kfid, msgid)
        if entry.kind == "welcome":
            state.session(entry.open_kfid, entry.external_userid).last_welcome_time = state.now()
        sent = SentMessage(
            "send_msg_on_event",
            entry.open_kfid,
            entry.external_userid,
            msgid,
            msgtype,
            copy.deepcopy(body),
            state.now(),
            None,
        )
    _record_send(emu, sent)
    return {"errcode": 0, "errmsg": "ok", "msgid": msgid}
