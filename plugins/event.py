"""Plugin events and actions, with CoW's names and values."""

from __future__ import annotations

from enum import Enum
from typing import Any


class Event(Enum):
    ON_RECEIVE_MESSAGE = 1  # {"channel", "context"}: a context was just composed
    ON_HANDLE_CONTEXT = 2  # {"channel", "context", "reply"}: before the bot is asked
    ON_DECORATE_REPLY = 3  # {"channel", "context", "reply"}: the reply is about to be decorated
    ON_SEND_REPLY = 4  # {"channel", "context", "reply"}: the reply is about to be sent


class EventAction(Enum):
    CONTINUE = 1  # next plugin, then the default handling
    BREAK = 2  # no further plugin; the default handling still runs
    BREAK_PASS = 3  # no further plugin and no default handling


class EventContext:
    """Dict-like view of one event (``e_context["context"]``, ``["reply"]``, ``["channel"]``)."""

    def __init__(self, event: Event, econtext: dict[str, Any] | None = None) -> None:
        self.event = event
        self.econtext: dict[str, Any] = {} if econtext is None else econtext
        self.action = EventAction.CONTINUE

    def __getitem__(self, key: str) -> Any:
        return self.econtext[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.econtext[key] = value

    def __delitem__(self, key: str) -> None:
        del self.econtext[key]

    def __contains__(self, key: object) -> bool:
        return key in self.econtext

    def get(self, key: str, default: Any = None) -> Any:
        return self.econtext.get(key, default)

    def is_pass(self) -> bool:
        return self.action == EventAction.BREAK_PASS

    def is_break(self) -> bool:
        return self.action in (EventAction.BREAK, EventAction.BREAK_PASS)
