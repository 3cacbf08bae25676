"""CoW's Channel: the interface every messaging channel implements."""

from __future__ import annotations

from typing import Any

from bridge.bridge import Bridge
from bridge.context import Context
from bridge.reply import Reply, ReplyType


class Channel:
    channel_type: str = ""  # set by channel_factory.create_channel
    NOT_SUPPORT_REPLYTYPE: list[ReplyType] = [ReplyType.VOICE, ReplyType.IMAGE]  # noqa: RUF012 - CoW's API

    def startup(self) -> None:
        """Start serving; blocks until ``stop()`` (app.py runs it in its own thread)."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop serving and release resources; safe to call more than once."""

    def handle_text(self, msg: Any) -> None:
        """Handle one inbound text message (channels that receive messages one by one)."""
        raise NotImplementedError

    def send(self, reply: Reply, context: Context) -> None:
        """Deliver ``reply`` to ``context["receiver"]``; raise on failure."""
        raise NotImplementedError

    def build_reply_content(self, query: Any, context: Context | None = None) -> Reply:
        return Bridge().fetch_reply_content(query, context)  # type: ignore[arg-type]

    def build_voice_to_text(self, voice_file: str) -> Reply:
        return Bridge().fetch_voice_to_text(voice_file)

    def build_text_to_voice(self, text: str) -> Reply:
        return Bridge().fetch_text_to_voice(text)
