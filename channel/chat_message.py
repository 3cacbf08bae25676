"""CoW's ChatMessage: a channel-neutral view of one inbound message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.context import ContextType


class ChatMessage:
    msg_id: str | None = None
    create_time: int | None = None
    ctype: ContextType | None = None
    content: Any = None
    from_user_id: str | None = None
    from_user_nickname: str | None = None
    to_user_id: str | None = None
    to_user_nickname: str | None = None
    other_user_id: str | None = None
    other_user_nickname: str | None = None
    my_msg: bool = False
    self_display_name: str | None = None
    is_group: bool = False
    is_at: bool = False
    actual_user_id: str | None = None
    actual_user_nickname: str | None = None
    at_list: list[str] | None = None

    def __init__(self, _rawmsg: Any) -> None:
        self._rawmsg = _rawmsg
        self._prepare_fn: Callable[[], None] | None = None
        self._prepared = False

    def prepare(self) -> None:
        """Run the lazy media download once, if the channel set one."""
        if self._prepare_fn is not None and not self._prepared:
            self._prepared = True
            self._prepare_fn()

    def __str__(self) -> str:
        return (
            f"ChatMessage(id={self.msg_id}, ctype={self.ctype}, from={self.from_user_id}, "
            f"to={self.to_user_id}, other={self.other_user_id})"
        )
