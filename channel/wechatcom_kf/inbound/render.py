"""Turn non-media ``kf/sync_msg`` bodies into readable Chinese text a bot can answer.

Every renderer reads fields with ``.get`` and tolerates wrong types: what WeCom (or a forged
item) sends must never raise here. Output is bounded so a huge chat record cannot flood the bot.
Field reference: https://developer.work.weixin.qq.com/document/path/94670
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from ..oncelog import OncePerKey

logger = logging.getLogger(__name__)

MAX_FIELD_CHARS = 500
MAX_RENDERED_CHARS = 4000
MAX_MERGED_ITEMS = 30
MAX_MENU_ITEMS = 10
MAX_MERGED_DEPTH = 2

MEDIA_LABELS = {"image": "图片", "voice": "语音", "video": "视频", "file": "文件"}
CHANNELS_SUB_TYPES = {1: "视频号动态", 2: "视频号直播", 3: "视频号名片"}

_unsupported_types = OncePerKey()
# Unknown msgtype names come from outside: keep what we log short and printable.
_TYPE_NAME_RE = re.compile(r"[^0-9A-Za-z_\-]")


def field(body: dict[str, Any], name: str, limit: int = MAX_FIELD_CHARS) -> str:
    """A body field as a stripped, length-capped string ("" when missing or not scalar)."""
    value = body.get(name)
    if value is None or isinstance(value, (dict, list)):
        return ""
    text = str(value).replace("\x00", "").strip()
    return text if len(text) <= limit else text[:limit] + "…"


def _join(*parts: str, sep: str = "，") -> str:
    return sep.join(p for p in parts if p)


def _location(body: dict[str, Any]) -> str:
    name, address = field(body, "name"), field(body, "address")
    lat, lon = field(body, "latitude", 32), field(body, "longitude", 32)
    place = name if not address or address == name else f"{name}（{address}）" if name else address
    coords = f"纬度 {lat}，经度 {lon}" if lat and lon else ""
    return "[用户发送了位置] " + (_join(place, coords) or "未知位置")


def _link(body: dict[str, Any]) -> str:
    # Rendered as text (not CoW's SHARING, which upstream hosts do not answer) so the bot replies.
    lines = ["[用户分享了链接] " + (field(body, "title") or "无标题")]
    lines += [x for x in (field(body, "desc"), field(body, "url", 2048)) if x]
    return "\n".join(lines)


def _miniprogram(body: dict[str, Any]) -> str:
    title = field(body, "title") or "未命名小程序"
    appid = field(body, "appid", 64)
    return f"[用户分享了小程序] {title}" + (f"（appid {appid}）" if appid else "")


def _business_card(body: dict[str, Any]) -> str:
    userid = field(body, "userid", 128)
    return "[用户分享了一张名片]" + (f" userid：{userid}" if userid else "")


def _channels(body: dict[str, Any]) -> str:
    label = CHANNELS_SUB_TYPES.get(_as_int(body.get("sub_type")) or 0, "视频号内容")
    detail = _join(field(body, "nickname"), field(body, "title"), sep="：")
    return f"[用户分享了{label}] {detail}".rstrip()


def _shop_product(body: dict[str, Any]) -> str:
    fen = _as_int(body.get("sales_price"))
    price = f"价格 ¥{fen // 100}.{fen % 100:02d}" if fen is not None and fen >= 0 else ""
    shop = field(body, "shop_nickname")
    product_id = field(body, "product_id", 64)
    return "[用户分享了视频号商品] " + _join(
        field(body, "title") or "未命名商品",
        price,
        f"店铺 {shop}" if shop else "",
        f"商品ID {product_id}" if product_id else "",
    )


def _shop_order(body: dict[str, Any]) -> str:
    parts = [
        ("订单号", field(body, "order_id", 64)),
        ("商品", field(body, "product_titles")),
        ("金额", field(body, "price_wording", 64)),
        ("状态", field(body, "state", 64)),
        ("店铺", field(body, "shop_nickname")),
    ]
    return "[用户分享了视频号订单] " + _join(*(f"{k} {v}" for k, v in parts if v))


def _msgmenu(body: dict[str, Any]) -> str:
    lines = [field(body, "head_content", 1024)]
    items = body.get("list")
    for item in (items if isinstance(items, list) else [])[:MAX_MENU_ITEMS]:
        if not isinstance(item, dict):
            continue
        inner = item.get(str(item.get("type") or ""))
        if isinstance(inner, dict):
            lines.append("- " + field(inner, "content", 256))
    lines.append(field(body, "tail_content", 1024))
    text = "\n".join(x for x in lines if x and x != "- ")
    return "[用户发送了菜单消息]" + (f"\n{text}" if text else "")


def _merged(body: dict[str, Any], depth: int = 0) -> str:
    lines = ["[用户转发了聊天记录] " + (field(body, "title") or "聊天记录")]
    items = body.get("item")
    items = items if isinstance(items, list) else []
    for entry in items[:MAX_MERGED_ITEMS]:
        if not isinstance(entry, dict):
            continue
        msgtype = field(entry, "msgtype", 64)
        inner = parse_json_object(entry.get("msg_content"))
        sender = field(entry, "sender_name", 64) or "某人"
        lines.append(f"{sender}：{_merged_item(msgtype, inner, depth)}")
    if len(items) > MAX_MERGED_ITEMS:
        lines.append(f"……（另有 {len(items) - MAX_MERGED_ITEMS} 条未显示）")
    return "\n".join(lines)


def _merged_item(msgtype: str, inner: dict[str, Any], depth: int) -> str:
    # msg_content holds the body either directly or under its msgtype key; accept both.
    nested = inner.get(msgtype)
    body: dict[str, Any] = nested if isinstance(nested, dict) else inner
    if msgtype == "text":
        return field(body, "content") or "[空消息]"
    if msgtype in MEDIA_LABELS:
        return f"[{MEDIA_LABELS[msgtype]}]"
    if msgtype == "merged_msg":
        return _merged(body, depth + 1) if depth + 1 < MAX_MERGED_DEPTH else "[聊天记录]"
    renderer = _RENDERERS.get(msgtype)
    return renderer(body) if renderer else f"[{msgtype or '未知'}消息]"


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_json_object(raw: Any) -> dict[str, Any]:
    """A ``msg_content`` value (JSON string, or already an object) as a dict; {} when unusable."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, (str, bytes)) or len(raw) > 1_000_000:
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


_RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "location": _location,
    "link": _link,
    "miniprogram": _miniprogram,
    "business_card": _business_card,
    "channels": _channels,
    "channels_shop_product": _shop_product,
    "channels_shop_order": _shop_order,
    "msgmenu": _msgmenu,
    "merged_msg": _merged,
}

RENDERED_TYPES = frozenset(_RENDERERS)


def unsupported_text(msgtype: str) -> str:
    """The polite stand-in for a msgtype we cannot read (the customer still gets an answer)."""
    name = _TYPE_NAME_RE.sub("", msgtype)[:32] or "未知"
    return f"[用户发送了一条暂不支持的消息（类型 {name}）]"


def _warn_once(msgtype: str) -> None:
    name = _TYPE_NAME_RE.sub("", msgtype)[:32] or "?"
    if not _unsupported_types.first(name):
        return
    logger.warning("unsupported KF msgtype %r answered with a stand-in text (logged once per type)", name)


def render_body(msgtype: str, body: Any) -> str:
    """Readable text for a non-media msgtype; unknown types get a stand-in and one WARNING per type."""
    renderer = _RENDERERS.get(msgtype)
    if renderer is None:
        _warn_once(msgtype)
        return unsupported_text(msgtype)
    text = renderer(body if isinstance(body, dict) else {})
    return text if len(text) <= MAX_RENDERED_CHARS else text[:MAX_RENDERED_CHARS] + "…"
