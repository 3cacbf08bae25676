"""CoW's ``bridge/context.py``: ``ContextType`` and the dict-like ``Context``."""

from __future__ import annotations

from enum import Enum
from typing import Any


class ContextType(Enum):
    TEXT = 1
    VOICE = 2
    IMAGE = 3
    FILE = 4
    VIDEO = 5
    SHARING = 6
    IMAGE_CREATE = 10
    ACCEPT_FRIEND = 19
    JOIN_GROUP = 20
    PATPAT = 21
    FUNCTION = 22
    EXIT_GROUP = 23

    def __str__(self) -> str:
        return self.name


class Context:
    def __init__(
        self,
        type: ContextType | None = None,  # noqa: A002 - upstream's parameter name
        content: Any = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.type = type
        self.content = content
        self.kwargs: dict[str, Any] = {} if kwargs is None else kwargs

    def __contains__(self, key: str) -> bool:
        if key == "type":
            return self.type is not None
        if key == "content":
            return self.content is not None
        return key in self.kwargs

    def __getitem__(self, key: str) -> Any:
        if key == "type":
            return self.type
        if key == "content":
            return self.content
        return self.kwargs[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key == "type":
            self.type = value
        elif key == "content":
            self.content = value
        else:
            self.kwargs[key] = value

    def __delitem__(self, key: str) -> None:
        if key == "type":
            self.type = None
        elif key == "content":
            self.content = None
        else:
            del self.kwargs[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __str__(self) -> str:
        return f"Context(type={self.type}, content={self.content}, kwargs={self.kwargs})"
