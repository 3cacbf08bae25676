"""The chat feed the browser page shows: customer, bot, servicer and system entries."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from sandbox.emulator.models import ApiRequest, Rejection, SentMessage

if TYPE_CHECKING:
    from sandbox.emulator.state import EmulatorState

MEDIA_KINDS = ("image", "voice", "video", "file")


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
    entry(state, open_kfid, user, "system", "text", {"content": text}, **extra)


def rejection(state: EmulatorState, req: ApiRequest, rej: Rejection) -> None:
    """Only send rejections interest the chat page (why a reply did not arrive)."""
    if req.api not in ("kf/send_msg", "kf/send_msg_on_event"):
        return
    body = rej.request.get("body")
    body = body if isinstance(body, dict) else {}
    text = f"{req.api} rejected: errcode {rej.errcode} {rej.errmsg}"
    system(state, str(body.get("open_kfid", "")), str(body.get("touser", "")), text, errcode=rej.errcode)
