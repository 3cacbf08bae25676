"""CoW's ``bridge/reply.py``: ``ReplyType`` and ``Reply``."""

from __future__ import annotations

from enum import Enum
from typing import Any


class ReplyType(Enum):
    TEXT = 1
    VOICE = 2
    IMAGE = 3
    IMAGE_URL = 4
    VIDEO_URL = 5
    FILE = 6
    CARD = 7
    INVITE_ROOM = 8
    INFO = 9
    ERROR = 10
    TEXT_ = 11
    VIDEO = 12
    MINIAPP = 13

    def __str__(self) -> str:
        return self.name


class Reply:
    def __init__(self, type: ReplyType | None = None, content: Any = None) -> None:  # noqa: A002
        self.type = type
        self.content = content

    def __str__(self) -> str:
        return f"Reply(type={self.type}, content={self.content})"
