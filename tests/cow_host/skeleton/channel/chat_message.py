"""CoW's ``ChatMessage``: the fields ``ChatChannel`` reads; ``prepare()`` runs ``_prepare_fn`` once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class ChatMessage:
    msg_id: Any = None
    create_time: Any = None
    ctype: Any = None
    content: Any = None
    from_user_id: Any = None
    from_user_nickname: Any = None
    to_user_id: Any = None
    to_user_nickname: Any = None
    other_user_id: Any = None
    other_user_nickname: Any = None
    my_msg = False
    self_display_name: Any = None
    is_group = False
    is_at = False
    actual_user_id: Any = None
    actual_user_nickname: Any = None
    at_list: Any = None
    _prepare_fn: Callable[[], Any] | None = None
    _prepared = False
    _rawmsg: Any = None

    def __init__(self, _rawmsg: Any) -> None:
        self._rawmsg = _rawmsg

    def prepare(self) -> None:
        if self._prepare_fn and not self._prepared:
            self._prepared = True
            self._prepare_fn()
