"""CoW's ``Channel`` base: ``build_reply_content`` asks the Bridge; ``stop()`` exists from 2.0 on."""

from __future__ import annotations

from typing import ClassVar

import host_profile as profile

from bridge.bridge import Bridge
from bridge.context import Context
from bridge.reply import Reply, ReplyType


class Channel:
    channel_type = ""
    NOT_SUPPORT_REPLYTYPE: ClassVar[list[ReplyType]] = [ReplyType.VOICE, ReplyType.IMAGE]

    def startup(self) -> None:
        raise NotImplementedError

    def send(self, reply: Reply, context: Context) -> None:
        raise NotImplementedError

    def build_reply_content(self, query: str, context: Context | None = None) -> Reply:
        return Bridge().fetch_reply_content(query, context or Context())


if profile.HAS_CHANNEL_STOP:

    def _stop(self: Channel) -> None:
        """Stop gracefully (CoW 2.x)."""

    Channel.stop = _stop  # type: ignore[attr-defined]
