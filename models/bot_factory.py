"""Creates a bot by type name; the only place in models/ that reads the configuration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from models.bot import Bot
from models.dify_bot import APP_TYPES as DIFY_APP_TYPES
from models.providers import (
    COW_BOT_TYPES,
    NO_KEY_PLACEHOLDER,
    endpoint_problem,
    key_names,
    provider_name,
    resolve_endpoint,
    unknown_provider,
)

ECHO = "echo"
OPENAI = "openai"
DIFY = "dify"
# Every accepted ``bot_type`` (matched case-insensitively), as the messages list them; "chatGPT" and
# "gpt" are CoW's historical names for the OpenAI chat bot; CoW's bot types of the providers that
# have a preset (deepseek, dashscope, qwen, zhipu, glm-4, moonshot) mean the OpenAI bot with it.
KNOWN_BOT_TYPES = (ECHO, OPENAI, "chatGPT", "gpt", DIFY, *COW_BOT_TYPES)
_ALIASES = {name.lower(): (name if name in (ECHO, DIFY) else OPENAI) for name in KNOWN_BOT_TYPES}
# config.py's declared environment variables (tests keep them in step).
OPEN_AI_API_KEY_ENV = "OPEN_AI_API_KEY"
DIFY_API_KEY_ENV = "DIFY_API_KEY"


def _unknown_type(bot_type: str) -> str:
    return f"unknown bot_type {bot_type!r}; known types: {', '.join(KNOWN_BOT_TYPES)} (any letter case)"


def bot_kind(bot_type: str) -> str | None:
    """``"echo"``, ``"openai"`` or ``"dify"`` for a known ``bot_type`` (any letter case), else None."""
    return _ALIASES.get((bot_type or "").strip().lower())


def _has_model_key(get: Callable[..., Any]) -> bool:
    return bool(resolve_endpoint(get).api_key)


def effective_bot_type(get: Callable[..., Any]) -> str:
    """The ``bot_type`` that answers: as configured, or for an empty one "openai" when a model key is
    configured (``open_ai_api_key``, or CoW's key of the chosen provider, or a provider that needs
    none), else "echo"."""
    bot_type = str(get("bot_type", "") or "").strip()
    if bot_type:
        return bot_type
    return OPENAI if _has_model_key(get) else ECHO


def _missing_model_key(get: Callable[..., Any], bot_type: str) -> str:
    provider = provider_name(get)
    names = " or ".join(key_names(get))
    if provider:
        return f"no API key for model_provider {provider!r} — set {names} (or {OPEN_AI_API_KEY_ENV})"
    if bot_type:
        return f"open_ai_api_key is empty but bot_type is {bot_type!r} — set it (or {OPEN_AI_API_KEY_ENV})"
    return (
        f"open_ai_api_key is empty — set it (or {OPEN_AI_API_KEY_ENV}), "
        'or set "bot_type": "echo" to run the offline echo bot on purpose'
    )


def _dify_problem(get: Callable[..., Any]) -> str | None:
    if not str(get("dify_api_key", "") or "").strip():
        return f"dify_api_key is empty but bot_type is 'dify' — set it (or {DIFY_API_KEY_ENV})"
    app_type = str(get("dify_app_type", "") or "chatbot").strip().lower()
    if app_type not in DIFY_APP_TYPES:
        return (
            f"dify_app_type {app_type!r} is not supported; known: {', '.join(DIFY_APP_TYPES)} "
            "(a workflow app: publish it as a chatflow)"
        )
    return None


def check_bot_settings(get: Callable[..., Any], *, sandbox: bool = False) -> str | None:
    """The one-line problem that would make every answer fake or failed, or None when the bot is fine.

    ``get`` is ``conf().get``. An empty ``bot_type`` means openai when a model key is configured
    (see ``effective_bot_type``); without one the echo bot would answer customers with their own
    words, so that is a problem, except in the sandbox (``sandbox=True``), where the echo bot is the
    point (``sandbox_note`` says so when a provider was chosen). ``"bot_type": "echo"`` is accepted:
    asked for on purpose. An unknown ``bot_type`` or ``model_provider`` is always a problem. Pure:
    reads nothing but ``get``; app.py calls it before it starts channels.
    """
    bot_type = str(get("bot_type", "") or "").strip()
    if bot_type and bot_kind(bot_type) is None:
        return _unknown_type(bot_type)
    problem = unknown_provider(get)
    if problem is not None:
        return problem
    kind = bot_kind(effective_bot_type(get))
    if kind == DIFY:
        return _dify_problem(get)
    if kind == ECHO:
        return None if bot_type or sandbox else _missing_model_key(get, bot_type)
    if not _has_model_key(get):  # an explicit openai-type bot_type without a key
        return _missing_model_key(get, bot_type)
    return endpoint_problem(get)


def sandbox_note(get: Callable[..., Any]) -> str | None:
    """In the sandbox: the line saying that the chosen ``model_provider`` has no key, so the echo bot
    answers instead (None when that is not the case)."""
    provider = provider_name(get)
    if not provider or str(get("bot_type", "") or "").strip() or _has_model_key(get):
        return None
    return (
        f"sandbox: model_provider {provider!r} has no API key ({' or '.join(key_names(get))}); "
        "the offline echo bot answers / 沙盒：未设置模型密钥，由回声机器人回复"
    )


def create_bot(bot_type: str) -> Bot:
    """Returns a new bot; `bot_type` "" picks "openai" when a model key is configured, else "echo"."""
    from config import conf  # lazy: the models package must import without a loaded config

    get = conf().get
    name = (bot_type or "").strip() or effective_bot_type(get)
    kind = bot_kind(name)
    if kind is None:
        raise ValueError(_unknown_type(bot_type))
    if kind == ECHO:
        from models.echo_bot import EchoBot

        return EchoBot()
    if kind == DIFY:
        return _create_dify_bot(get)
    if name.lower() in COW_BOT_TYPES:  # e.g. find_chat_bot("deepseek"): that preset, whatever bot_type says
        return _create_openai_bot(lambda key, default=None: name if key == "bot_type" else get(key, default))
    return _create_openai_bot(get)


def _create_openai_bot(get: Callable[..., Any]) -> Bot:
    from models.openai_chat_bot import OpenAIChatBot
    from models.openai_http import client_from_conf

    endpoint = resolve_endpoint(get)
    return OpenAIChatBot(
        client_from_conf(get, endpoint.api_key or NO_KEY_PLACEHOLDER, endpoint.api_base),
        model=endpoint.model,
        system_prompt=get("character_desc", "") or "",
        temperature=float(get("temperature", 0.7)),
        max_history_turns=int(get("max_history_turns", 10)),
        max_history_chars=int(get("conversation_max_tokens", 4000)),
        expires_in_seconds=float(get("expires_in_seconds", 3600)),
        vision_input=bool(get("vision_input", False)),
        stream=bool(get("stream", False)),
    )


def _create_dify_bot(get: Callable[..., Any]) -> Bot:
    from models.dify_bot import DEFAULT_API_BASE, DifyBot
    from models.openai_http import client_from_conf

    client = client_from_conf(
        get, str(get("dify_api_key", "") or ""), str(get("dify_api_base", "") or "") or DEFAULT_API_BASE
    )
    return DifyBot(
        client,
        app_type=str(get("dify_app_type", "") or "chatbot").strip().lower(),
        stream=bool(get("stream", False)),
        expires_in_seconds=float(get("expires_in_seconds", 3600)),
    )
