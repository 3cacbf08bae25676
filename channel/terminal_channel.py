"""A terminal channel: type a message, read the bot's answer. For trying bots and plugins offline."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

from bridge.context import Context, ContextType
from bridge.reply import Reply, ReplyType
from channel.chat_channel import ChatChannel
from channel.chat_message import ChatMessage

logger = logging.getLogger(__name__)


class TerminalMessage(ChatMessage):
    def __init__(self, msg_id: int, content: str) -> None:
        super().__init__(content)
        self.msg_id = str(msg_id)
        self.create_time = int(time.time())
        self.ctype = ContextType.TEXT
        self.content = content
        self.from_user_id = self.other_user_id = "terminal-user"
        self.to_user_id = "bot"


class TerminalChannel(ChatChannel):
    NOT_SUPPORT_REPLYTYPE = [ReplyType.VOICE, ReplyType.IMAGE, ReplyType.FILE]  # noqa: RUF012

    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
        super().__init__()
        self._in = stdin or sys.stdin
        self._out = stdout or sys.stdout
        self._done = threading.Event()

    def startup(self) -> None:
        """Read lines until end of input or stop(); each line is one message."""
        for msg_id, line in enumerate(self._in, start=1):
            if self._done.is_set():
                break
            text = line.strip()
            if not text:
                continue
            cmsg = TerminalMessage(msg_id, text)
            context = self._compose_context(ContextType.TEXT, text, msg=cmsg)
            if context is not None:
                self.produce(context)

    def stop(self) -> None:
        self._done.set()
        super().stop()

    def send(self, reply: Reply, context: Context) -> None:
        print(f"Bot: {reply.content}", file=self._out, flush=True)
