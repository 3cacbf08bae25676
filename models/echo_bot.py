"""An offline bot that echoes the query: deterministic and instant, for the sandbox, tests and benchmarks."""

from __future__ import annotations

from bridge.context import Context
from bridge.reply import Reply, ReplyType
from models.bot import Bot


class EchoBot(Bot):
    """Answers "你说：<query>" and mentions the images of the turn, if any."""

    def reply(self, query: str, context: Context | None = None) -> Reply:
        text = (query or "").strip()
        images = _image_count(context)
        parts: list[str] = []
        if text:
            parts.append(f"你说：{text}")
        elif not images:
            parts.append("你好像什么都没说，请问有什么可以帮您？")
        else:
            parts.append("你发来了图片")
        if images:
            parts.append(f"（收到 {images} 张图片）")
        return Reply(ReplyType.TEXT, "".join(parts))


def _image_count(context: Context | None) -> int:
    if context is None:
        return 0
    paths = context.get("image_paths") or []
    return len(paths) if isinstance(paths, (list, tuple)) else 0
