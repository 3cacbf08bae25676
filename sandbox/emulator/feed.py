"""The chat feed the browser page shows: customer, bot, servicer and system entries."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sandbox.emulator.models import ApiRequest, Rejection, SentMessage

if TYPE_CHECKING:
    from sandbox.emulator.state import EmulatorState

MEDIA_KINDS = ("image", "voice", "video", "file")

# The chat shows system notices in Chinese (the customer-side view); the emulator's call sites write them in
# English, so they are put into Chinese here. Ids and numbers stay as they are for engineers.
# Session states: https://developer.work.weixin.qq.com/document/path/94669 (4 = 已结束/未开始; a trans to 4
# comes from a live session, so it ends one).
STATE_NAMES = {0: "未处理", 1: "由智能助手接待", 2: "待接入池排队中", 3: "由人工接待", 4: "已结束"}
# Event types: https://developer.work.weixin.qq.com/document/path/94670
EVENT_NAMES = {
    "enter_session": "客户进入会话",
    "msg_send_fail": "消息发送失败",
    "servicer_status_change": "接待人员接待状态变更",
    "session_status_change": "会话状态变更",
    "user_recall_msg": "客户撤回消息",
    "servicer_recall_msg": "接待人员撤回消息",
    "reject_customer_msg_switch_change": "拒收客户消息开关变更",
}
# Why a send was refused, for the notice under the conversation (the protocol pane has the full list).
SEND_REFUSALS = {
    -1: "系统繁忙",
    40058: "参数无效",
    45009: "调用频率超限",
    95000: "open_kfid 无效",
    95001: "超过 5 条发送上限",
    95002: "超过 48 小时发送窗口",
    95018: "会话状态不允许发送",
}


def _state_notice(match: re.Match[str]) -> str:
    state = int(match.group(1))
    name = STATE_NAMES.get(state, "未知状态")
    return f"会话转为「{name}」（service_state {state}）"


def _event_notice(match: re.Match[str]) -> str:
    kind = match.group(1)
    name = EVENT_NAMES.get(kind)
    return f"事件：{name}（{kind}）" if name else f"事件：{kind}"


NOTICES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"customer entered the session"), lambda m: "客户进入了会话"),
    (re.compile(r"(.+) took over the session"), lambda m: f"接待人员 {m.group(1)} 接管了会话"),
    (re.compile(r"session ended by the receptionist"), lambda m: "接待人员结束了会话"),
    (re.compile(r"customer recalled a message"), lambda m: "客户撤回了一条消息"),
    (re.compile(r"service_state -> (-?\d+) \(API\)"), _state_notice),
    (re.compile(r"event (\S+)"), _event_notice),
]


def notice_text(text: str) -> str:
    """The Chinese text of a system notice (a text without a translation is kept as it is)."""
    for pattern, chinese in NOTICES:
        match = pattern.fullmatch(text)
        if match:
            return chinese(match)
    return text


def media_url(media_id: str, kind: str) -> str:
    return f"/sandbox/media/{media_id}" + ("?format=wav" if kind == "voice" else "")


def describe(msgtype: str, body: dict[str, Any]) -> str:
    """A one-line text for any message body."""
    if msgtype == "text":
        return str(body.get("content", ""))
    if msgtype == "msgmenu":
        lines = [str(body.get("head_content", ""))]
        for item in body.get("list", []) or []:
            kind = item.get("type", "") if isinstance(item, dict) else ""
            sub = item.get(kind, {}) if isinstance(item, dict) else {}
            lines.append(f"[{kind}] {sub.get('content', '') if isinstance(sub, dict) else ''}")
        lines.append(str(body.get("tail_content", "")))
        return "\n".join(line for line in lines if line)
    if msgtype == "link":
        return f"{body.get('title', '')} {body.get('url', '')}"
    if msgtype == "location":
        return f"{body.get('name', '')} {body.get('address', '')}"
    if msgtype == "event":
        return f"event {body.get('event_type', '')}"
    return "" if msgtype in MEDIA_KINDS else f"[{msgtype}]"


def menu_of(body: dict[str, Any]) -> dict[str, Any]:
    """The parts of a msgmenu body the page renders (https://developer.work.weixin.qq.com/document/path/94677)."""
    items = body.get("list")
    return {
        "head_content": str(body.get("head_content") or ""),
        "list": copy.deepcopy(items) if isinstance(items, list) else [],
        "tail_content": str(body.get("tail_content") or ""),
    }


def entry(
    state: EmulatorState,
    open_kfid: str,
    user: str,
    sender: str,
    msgtype: str,
    body: dict[str, Any],
    **extra: Any,
) -> None:
    """Append one feed entry; media bodies get a media_url and the stored file name, a msgmenu its
    ``menu`` (head_content, list, tail_content) for the page to draw buttons from."""
    item: dict[str, Any] = {
        "open_kfid": open_kfid,
        "external_userid": user,
        "from": sender,
        "msgtype": msgtype,
        "text": describe(msgtype, body),
        "media_url": None,
        "filename": None,
    }
    media_id = body.get("media_id")
    if msgtype in MEDIA_KINDS and isinstance(media_id, str):
        item["media_url"] = media_url(media_id, msgtype)
        stored = state.media.get(media_id)
        item["filename"] = stored.filename if stored else None
    if msgtype == "msgmenu":
        item["menu"] = menu_of(body)
    item.update(extra)
    state.add_feed(item)


def sent(state: EmulatorState, message: SentMessage) -> None:
    entry(state, message.open_kfid, message.touser, "bot", message.msgtype, message.body, msgid=message.msgid)


def system(state: EmulatorState, open_kfid: str, user: str, text: str, **extra: Any) -> None:
    """A system notice in the chat; ``text`` in English or Chinese, shown in Chinese (``notice_text``)."""
    entry(state, open_kfid, user, "system", "text", {"content": notice_text(text)}, **extra)


def rejection(state: EmulatorState, req: ApiRequest, rej: Rejection) -> None:
    """Only send rejections interest the chat page (why a reply did not arrive)."""
    if req.api not in ("kf/send_msg", "kf/send_msg_on_event"):
        return
    body = rej.request.get("body")
    body = body if isinstance(body, dict) else {}
    reason = SEND_REFUSALS.get(rej.errcode)
    text = f"回复未能发出：{req.api} 被拒绝，errcode {rej.errcode}" + (f"，{reason}" if reason else "")
    text += f"（{rej.errmsg}）" if rej.errmsg else ""
    system(state, str(body.get("open_kfid", "")), str(body.get("touser", "")), text, errcode=rej.errcode)
