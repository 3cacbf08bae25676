"""The Bridge routes a channel's requests to the configured bot and speech providers (CoW's Bridge)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from bridge.context import Context
from bridge.reply import Reply, ReplyType
from config import conf

logger = logging.getLogger(__name__)

CHAT = "chat"
VOICE_TO_TEXT = "voice_to_text"
TEXT_TO_VOICE = "text_to_voice"

VOICE_NOT_ENABLED = "暂不支持语音消息，请发送文字。"


class Bridge:
    """One per process (CoW calls ``Bridge()`` everywhere); bots are created on first use."""

    _instance: Bridge | None = None
    _instance_lock = threading.Lock()

    def __new__(cls) -> Bridge:
        with cls._instance_lock:
            if cls._instance is None:
                instance = super().__new__(cls)
                instance._setup()
                cls._instance = instance
            return cls._instance

    def _setup(self) -> None:
        self._lock = threading.Lock()
        self.bots: dict[str, Any] = {}
        # CoW's extra chat bots by bot type (``find_chat_bot``); godcmd's #reset clears their sessions too.
        self.chat_bots: dict[str, Any] = {}
        self.btype: dict[str, str] = {}
        self._resolve_types()

    def _resolve_types(self) -> None:
        from models.bot_factory import effective_bot_type
        from voice.factory import voice_to_text_type

        cfg = conf()
        self.btype = {
            CHAT: effective_bot_type(cfg.get),
            # The model provider's own transcription when voice_to_text is empty (voice/factory.py).
            VOICE_TO_TEXT: voice_to_text_type(cfg.get),
            TEXT_TO_VOICE: cfg.get("text_to_voice") or "",
        }

    def reset(self) -> None:
        """Forget every bot and read the bot types from the configuration again (tests, reloads)."""
        with self._lock:
            self.bots.clear()
            self.chat_bots.clear()
            self._resolve_types()

    def reset_bot(self) -> None:
        """CoW's name for ``reset``: godcmd's ``#model <name>`` sets ``conf()["model"]`` and calls it.

        The next request creates the bot again from the configuration, so the new model is used from
        then on; as in CoW, the old bot's conversation memory goes with it (every customer starts afresh).
        """
        self.reset()

    def set_bot(self, bot: Any, typename: str = CHAT) -> None:
        """Use ``bot`` for ``typename`` instead of creating one from the configuration."""
        with self._lock:
            self.bots[typename] = bot

    def unset_bot(self, bot: Any, typename: str = CHAT) -> None:
        """Undo ``set_bot(bot, typename)``, unless another bot has replaced it since."""
        with self._lock:
            if self.bots.get(typename) is bot:
                del self.bots[typename]

    def get_bot_type(self, typename: str) -> str:
        return self.btype.get(typename, "")

    def get_bot(self, typename: str) -> Any:
        with self._lock:
            bot = self.bots.get(typename)
            if bot is None:
                bot = self._create(typename)
                self.bots[typename] = bot
            return bot

    def find_chat_bot(self, bot_type: str) -> Any:
        """CoW's extra chat bot of ``bot_type`` (created on first use, kept in ``chat_bots``)."""
        with self._lock:
            bot = self.chat_bots.get(bot_type)
            if bot is None:
                from models.bot_factory import create_bot

                bot = create_bot(bot_type)
                self.chat_bots[bot_type] = bot
            return bot

    def _create(self, typename: str) -> Any:
        kind = self.btype.get(typename, "")
        logger.info("creating %s provider %r", typename, kind)
        if typename == CHAT:
            from models.bot_factory import create_bot  # imported late: tests may never need it

            return create_bot(kind)
        from voice.factory import create_voice

        return create_voice(kind)

    def fetch_reply_content(self, query: Any, context: Context) -> Reply:
        reply: Reply = self.get_bot(CHAT).reply(query, context)
        return reply

    def fetch_voice_to_text(self, voice_file: str) -> Reply:
        if not self.btype.get(VOICE_TO_TEXT) and VOICE_TO_TEXT not in self.bots:
            return Reply(ReplyType.INFO, VOICE_NOT_ENABLED)
        reply: Reply = self.get_bot(VOICE_TO_TEXT).voiceToText(voice_file)
        return reply

    def fetch_text_to_voice(self, text: str) -> Reply:
        if not self.btype.get(TEXT_TO_VOICE) and TEXT_TO_VOICE not in self.bots:
            # No speech synthesis configured: answer in text rather than not at all.
            return Reply(ReplyType.TEXT, text)
        reply: Reply = self.get_bot(TEXT_TO_VOICE).textToVoice(text)
        return reply

    @classmethod
    def _drop_instance(cls) -> None:
        """Tests only: the next ``Bridge()`` starts from scratch."""
        with cls._instance_lock:
            cls._instance = None
