"""Menu messages (``msgmenu``) from configuration, checked against WeCom's documented limits at start.

https://developer.work.weixin.qq.com/document/path/94677 (send_msg, msgmenu): ``head_content`` and
``tail_content`` ≤ 1024 bytes, at most 10 items (95008), each ``click`` {id 1-128 B, content 1-128 B},
``view`` {url ≤ 2048 B, content ≤ 1024 B}, ``miniprogram`` {appid ≤ 32 B, pagepath ≤ 1024 B,
content ≤ 1024 B} or ``text`` {content 1-256 B, no_newline 0/1}. A click comes back as a text message
with ``menu_id``.
"""

from __future__ import annotations

from typing import Any

MAX_ITEMS = 10
_FIELDS: dict[str, dict[str, tuple[int, int]]] = {  # item type -> field -> (min bytes, max bytes)
    "click": {"id": (1, 128), "content": (1, 128)},
    "view": {"url": (1, 2048), "content": (1, 1024)},
    "miniprogram": {"appid": (1, 32), "pagepath": (1, 1024), "content": (1, 1024)},
    "text": {"content": (1, 256)},
}


def _check_text(where: str, value: Any, low: int, high: int) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a string")
    size = len(value.encode("utf-8"))
    if not low <= size <= high:
        raise ValueError(f"{where} is {size} bytes (allowed {low}-{high})")


def _check_item(where: str, item: Any) -> dict[str, Any]:
    if not isinstance(item, dict) or item.get("type") not in _FIELDS:
        raise ValueError(f"{where} needs a type: one of {', '.join(_FIELDS)}")
    kind = item["type"]
    body = item.get(kind)
    if not isinstance(body, dict):
        raise ValueError(f'{where} of type {kind} needs an object "{kind}"')
    for name, (low, high) in _FIELDS[kind].items():
        _check_text(f"{where}.{kind}.{name}", body.get(name), low, high)
    if kind == "view" and not str(body["url"]).startswith(("http://", "https://")):
        raise ValueError(f"{where}.view.url must start with http:// or https://")
    return {"type": kind, kind: dict(body)}


def check_menu(setting: str, menu: dict[str, Any], head_default: str) -> dict[str, Any] | None:
    """The ``msgmenu`` body to send, or None for an empty setting; ValueError naming ``setting``."""
    if not menu:
        return None
    items = menu.get("list")
    if not isinstance(items, list) or not items:
        raise ValueError(f"{setting}: needs a non-empty list of menu items")
    if len(items) > MAX_ITEMS:
        raise ValueError(f"{setting}: {len(items)} menu items (WeCom allows at most {MAX_ITEMS})")
    body: dict[str, Any] = {"list": [_check_item(f"{setting}.list[{i}]", it) for i, it in enumerate(items)]}
    head = menu.get("head_content", head_default)
    for key, value in (("head_content", head), ("tail_content", menu.get("tail_content"))):
        if value:
            _check_text(f"{setting}.{key}", value, 1, 1024)
            body[key] = value
    return body


def click_ids(menu: dict[str, Any] | None) -> set[str]:
    return {str(item["click"]["id"]) for item in (menu or {}).get("list", []) if item["type"] == "click"}
