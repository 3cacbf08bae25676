"""CoW's Context: what a channel hands to the bot (type, content and free-form kwargs)."""

from __future__ import annotations

from collections.abc import Iterator
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
    """Dict-like carrier; ``kwargs`` is the dict behind item access (never shared between instances)."""

    def __init__(
        self,
        type: ContextType | None = None,  # noqa: A002 - CoW's public parameter name
        content: Any = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.type = type
        self.content = content
        self.kwargs: dict[str, Any] = {} if kwargs is None else kwargs

    def __contains__(self, key: object) -> bool:
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

    def __iter__(self) -> Iterator[str]:
        return iter(self.kwargs)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __str__(self) -> str:
        return f"Context(type={self.type}, content={self.content!r}, kwargs={self.kwargs!r})"

    __repr__ = __str__
