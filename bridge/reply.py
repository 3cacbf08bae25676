"""CoW's Reply: what the bot hands back to the channel."""

from __future__ import annotations

from enum import Enum
from typing import Any


class ReplyType(Enum):
    TEXT = 1
    VOICE = 2  # content: local audio file path
    IMAGE = 3  # content: file-like object
    IMAGE_URL = 4
    VIDEO_URL = 5
    FILE = 6  # content: local file path
    CARD = 7
    INVITE_ROOM = 8
    INFO = 9
    ERROR = 10
    TEXT_ = 11  # forced text, no decoration
    VIDEO = 12
    MINIAPP = 13

    def __str__(self) -> str:
        return self.name


class Reply:
    def __init__(self, type: ReplyType | None = None, content: Any = None) -> None:  # noqa: A002
        self.type = type
        self.content = content

    def __str__(self) -> str:
        return f"Reply(type={self.type}, content={self.content!r})"

    __repr__ = __str__
