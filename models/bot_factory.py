"""Creates a bot by type name; the only place in models/ that reads the configuration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from models.bot import Bot

ECHO = "echo"
OPENAI = "openai"
# Every accepted ``bot_type`` (matched case-insensitively), as the messages list them; "chatGPT" and
# "gpt" are CoW's historical names for the OpenAI chat bot.
KNOWN_BOT_TYPES = (ECHO, OPENAI, "chatGPT", "gpt")
_ALIASES = {name.lower(): (ECHO if name == ECHO else OPENAI) for name in KNOWN_BOT_TYPES}
# config.py's declared environment variable of ``open_ai_api_key`` (tests keep the two in step).
OPEN_AI_API_KEY_ENV = "OPEN_AI_API_KEY"


def _unknown_type(bot_type: str) -> str:
    return f"unknown bot_type {bot_type!r}; known types: {', '.join(KNOWN_BOT_TYPES)} (any letter case)"


def bot_kind(bot_type: str) -> str | None:
    """``"echo"`` or ``"openai"`` for a known ``bot_type`` name (any letter case), else None."""
    return _ALIASES.get((bot_type or "").strip().lower())


def check_bot_settings(get: Callable[..., Any], *, sandbox: bool = False) -> str | None:
    """The one-line problem that would make every answer fake or failed, or None when the bot is fine.

    ``get`` is ``conf().get``. An empty ``bot_type`` means openai when ``open_ai_api_key`` is set; without
    a key the echo bot would answer customers with their own words, so that is a problem, except in the
    sandbox (``sandbox=True``), where the echo bot is the point. ``"bot_type": "echo"`` is accepted:
    asked for on purpose. Pure: reads nothing but ``get``; app.py calls it before it starts channels.
    """
    bot_type = str(get("bot_type", "") or "").strip()
    has_key = bool(str(get("open_ai_api_key", "") or "").strip())
    if not bot_type:
        if has_key or sandbox:
            return None
        return (
            f"open_ai_api_key is empty — set it (or {OPEN_AI_API_KEY_ENV}), "
            'or set "bot_type": "echo" to run the offline echo bot on purpose'
        )
    kind = bot_kind(bot_type)
    if kind is None:
        return _unknown_type(bot_type)
    if kind == OPENAI and not has_key:
        return f"open_ai_api_key is empty but bot_type is {bot_type!r} — set it (or {OPEN_AI_API_KEY_ENV})"
    return None


def create_bot(bot_type: str) -> Bot:
    """Returns a new bot; `bot_type` "" picks "openai" when an API key is configured, else "echo"."""
    name = (bot_type or "").strip()
    if not name:
        from config import conf  # lazy: the models package must import without a loaded config

        name = OPENAI if conf().get("open_ai_api_key", "") else ECHO
    kind = bot_kind(name)
    if kind is None:
        raise ValueError(_unknown_type(bot_type))
    if kind == ECHO:
        from models.echo_bot import EchoBot

        return EchoBot()
    return _create_openai_bot()


def _create_openai_bot() -> Bot:
    from config import conf
    from models.openai_chat_bot import OpenAIChatBot
    from models.openai_http import client_from_conf

    get = conf().get
    return OpenAIChatBot(
        client_from_conf(get),
        model=get("model", "") or "gpt-4o-mini",
        system_prompt=get("character_desc", "") or "",
        temperature=float(get("temperature", 0.7)),
        max_history_turns=int(get("max_history_turns", 10)),
        max_history_chars=int(get("conversation_max_tokens", 4000)),
        expires_in_seconds=float(get("expires_in_seconds", 3600)),
        vision_input=bool(get("vision_input", False)),
    )
