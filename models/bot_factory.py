"""Creates a bot by type name; the only place in models/ that reads the configuration."""

from __future__ import annotations

from models.bot import Bot

ECHO = "echo"
OPENAI = "openai"
# CoW's historical names for the OpenAI chat bot.
_ALIASES = {"chatgpt": OPENAI, "openai": OPENAI, "gpt": OPENAI, "echo": ECHO}
KNOWN_BOT_TYPES = (ECHO, OPENAI, "chatGPT", "openAI")


def create_bot(bot_type: str) -> Bot:
    """Returns a new bot; `bot_type` "" picks "openai" when an API key is configured, else "echo"."""
    name = (bot_type or "").strip()
    if not name:
        from config import conf  # lazy: the models package must import without a loaded config

        name = OPENAI if conf().get("open_ai_api_key", "") else ECHO
    kind = _ALIASES.get(name.lower())
    if kind is None:
        raise ValueError(f"unknown bot_type {bot_type!r}; known types: {', '.join(KNOWN_BOT_TYPES)}")
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
