"""Field checks for outgoing message bodies (kf/send_msg, kf/send_msg_on_event), fact sheet §4."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sandbox.emulator.models import ApiError

MSGID_RE = re.compile(r"^[0-9a-zA-Z_-]*$")
MEDIA_TYPES = ("image", "voice", "video", "file")
SEND_TYPES = (*MEDIA_TYPES, "text", "link", "miniprogram", "msgmenu", "location", "ca_link")
MENU_ITEM_TYPES = ("click", "view", "miniprogram", "text")


def nbytes(value: Any) -> int:
    return len(str(value).encode("utf-8"))


def check_len(value: Any, limit: int, what: str, *, required: bool = False, minimum: int = 0) -> None:
    """40058 when a string field is missing (if required), not a string, or over ``limit`` bytes."""
    if value is None:
        if required:
            raise ApiError(40058, f"missing {what}")
        return
    if not isinstance(value, str):
        raise ApiError(40058, f"invalid {what}")
    size = nbytes(value)
    if size > limit or size < minimum:
        raise ApiError(40058, f"{what} length {size} out of range [{minimum}, {limit}] bytes")


def check_msgid(msgid: Any) -> str | None:
    """The optional client msgid: ≤32 bytes of [0-9a-zA-Z_-]."""
    if msgid is None or msgid == "":
        return None
    if not isinstance(msgid, str) or nbytes(msgid) > 32 or not MSGID_RE.match(msgid):
        raise ApiError(40058, "invalid msgid")
    return msgid


def body_of(request: dict[str, Any], msgtype: str) -> dict[str, Any]:
    body = request.get(msgtype)
    if not isinstance(body, dict):
        raise ApiError(40058, f"missing {msgtype} body")
    return body


def check_menu(body: dict[str, Any]) -> None:
    """msgmenu: head/tail ≤1024 B, all three parts optional, ≤10 items (95008), known item types
    (95009). https://developer.work.weixin.qq.com/document/path/94677"""
    check_len(body.get("head_content"), 1024, "head_content")
    check_len(body.get("tail_content"), 1024, "tail_content")
    items = body.get("list", [])
    if not isinstance(items, list):
        raise ApiError(40058, "invalid list")
    if len(items) > 10:
        raise ApiError(95008, "too many menu items")
    for item in items:
        check_menu_item(item)


def check_menu_item(item: Any) -> None:
    """One msgmenu item: ``{type, <type>: {...}}`` with the §4 byte limits of its fields."""
    kind = item.get("type") if isinstance(item, dict) else None
    if kind not in MENU_ITEM_TYPES or not isinstance(item.get(kind), dict):
        raise ApiError(95009, "invalid menu item type")
    sub = item[kind]
    if kind == "click":
        check_len(sub.get("id"), 128, "click.id", required=True, minimum=1)
        check_len(sub.get("content"), 128, "click.content", required=True, minimum=1)
    elif kind == "view":
        check_len(sub.get("url"), 2048, "view.url", required=True)
        check_len(sub.get("content"), 1024, "view.content", required=True)
    elif kind == "miniprogram":
        check_len(sub.get("appid"), 32, "miniprogram.appid", required=True)
        check_len(sub.get("pagepath"), 1024, "miniprogram.pagepath", required=True)
        check_len(sub.get("content"), 1024, "miniprogram.content", required=True)
    else:
        check_len(sub.get("content"), 256, "text.content", required=True, minimum=1)
        if sub.get("no_newline") not in (None, 0, 1):
            raise ApiError(40058, "invalid text.no_newline")


def check_body(msgtype: str, body: dict[str, Any], media_kind: Callable[[str], str | None]) -> None:
    """Validate one body; ``media_kind(media_id)`` gives the stored kind or None when unknown/expired."""
    if msgtype == "text":
        check_len(body.get("content"), 2048, "text.content", required=True, minimum=1)
    elif msgtype in MEDIA_TYPES:
        media_id = body.get("media_id")
        if not isinstance(media_id, str) or media_kind(media_id) != msgtype:
            raise ApiError(40007, "invalid media_id")
    elif msgtype == "link":
        check_len(body.get("title"), 128, "link.title", required=True)
        check_len(body.get("desc"), 512, "link.desc")
        url = body.get("url")
        check_len(url, 2048, "link.url", required=True)
        if not str(url).startswith(("http://", "https://")):
            raise ApiError(40058, "invalid link.url")
        thumb = body.get("thumb_media_id")
        if not isinstance(thumb, str) or media_kind(thumb) != "image":
            raise ApiError(40007, "invalid thumb_media_id")
    elif msgtype == "miniprogram":
        check_len(body.get("appid"), 32, "miniprogram.appid", required=True)
        check_len(body.get("title"), 64, "miniprogram.title")
        check_len(body.get("pagepath"), 1024, "miniprogram.pagepath", required=True)
        thumb = body.get("thumb_media_id")
        if not isinstance(thumb, str) or media_kind(thumb) != "image":
            raise ApiError(40007, "invalid thumb_media_id")
    elif msgtype == "msgmenu":
        check_menu(body)
    elif msgtype == "location":
        check_coordinates(body)
    elif msgtype == "ca_link":
        check_len(body.get("link_url"), 2048, "ca_link.link_url", required=True, minimum=1)


def check_coordinates(body: dict[str, Any]) -> None:
    try:
        lat, lng = float(body["latitude"]), float(body["longitude"])
    except (KeyError, TypeError, ValueError):
        raise ApiError(40058, "invalid location") from None
    if not (-90 <= lat <= 90 and -180 <= lng <= 180):
        raise ApiError(40058, "invalid location")
