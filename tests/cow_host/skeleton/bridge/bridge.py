"""CoW's Bridge with a scripted bot (settings in ``host_bot.json`` of the tree, written by the test).

The bot answers "答：<query>" after ``latency`` seconds (``slow_latency`` when the query contains
"SLOW") and records every call. Markers in the query ask for the multi-send replies:
"MULTI_HTTP" / "MULTI_FILE": a text naming ``image_refs["http"|"file"]`` (a ``![](url)`` or a
``[图片: path]`` each, as agents write them; CoW 2.x then sends each image as its own ``send()``);
"EXTRA": additionally ``extra_replies`` (each ``extra_images`` as an IMAGE, then ``extra_texts``).
"""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import host_probe

from bridge.context import Context
from bridge.reply import Reply, ReplyType

SETTINGS_FILE = Path(__file__).resolve().parents[1] / "host_bot.json"


def _settings() -> dict[str, Any]:
    if SETTINGS_FILE.exists():
        loaded: dict[str, Any] = json.loads(SETTINGS_FILE.read_text(encoding="utf-8"))
        return loaded
    return {}


def _image_text(query: str, refs: dict[str, list[str]]) -> str:
    lines = [f"答：{query}"]
    if "MULTI_HTTP" in query or "EXTRA" in query:
        lines += [f"![图{i}]({url})" for i, url in enumerate(refs.get("http", []), 1)]
    if "MULTI_FILE" in query:
        lines += [f"[图片: {path}]" for path in refs.get("file", [])]
    return "\n".join(lines)


def _extras(settings: dict[str, Any]) -> list[Reply]:
    images = [
        Reply(ReplyType.IMAGE, io.BytesIO(Path(p).read_bytes())) for p in settings.get("extra_images", [])
    ]
    return images + [Reply(ReplyType.TEXT, text) for text in settings.get("extra_texts", [])]


class FakeBot:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.latency = float(settings.get("latency", 0.2))
        self.slow_latency = float(settings.get("slow_latency", 2.0))
        self.settings = settings

    def reply(self, query: str, context: Context) -> Reply:
        host_probe.record("bot_call", query=query, session=context.get("session_id"))
        time.sleep(self.slow_latency if "SLOW" in query else self.latency)
        reply = Reply(ReplyType.TEXT, _image_text(query, self.settings.get("image_refs", {})))
        if "EXTRA" in query:
            reply.extra_replies = _extras(self.settings)  # type: ignore[attr-defined]
        return reply


class Bridge:
    _instance: Bridge | None = None
    _lock = threading.Lock()

    def __new__(cls) -> Bridge:
        with cls._lock:
            if cls._instance is None:
                cls._instance = super().__new__(cls)
                cls._instance.bot = FakeBot(_settings())
            return cls._instance

    bot: FakeBot

    def fetch_reply_content(self, query: str, context: Context) -> Reply:
        return self.bot.reply(query, context)
