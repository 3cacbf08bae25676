"""Creates a speech provider by type name; the only place in voice/ that reads the configuration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from voice.voice import Voice

OPENAI = "openai"
KNOWN_VOICE_TYPES = (OPENAI,)
# ``voice_to_text`` values that turn speech recognition off even when the provider has one.
OFF = frozenset({"off", "none", "false", "no", "0"})


def voice_to_text_type(get: Callable[..., Any]) -> str:
    """The speech-to-text provider that transcribes customers' voice messages, "" for none.

    ``voice_to_text`` as configured wins ("off" turns it off); empty means the model provider's own
    OpenAI-compatible transcription (the OpenAI and SiliconFlow presets have one) when its API key is
    set, so voice works without a second setting. Pure: reads nothing but ``get``.
    """
    from models.providers import NO_KEY_PLACEHOLDER, resolve_endpoint, unknown_provider

    configured = str(get("voice_to_text", "") or "").strip().lower()
    if configured in OFF:
        return ""
    if configured:
        return configured
    if unknown_provider(get) is not None:
        return ""
    endpoint = resolve_endpoint(get)
    has_key = bool(endpoint.api_key) and endpoint.api_key != NO_KEY_PLACEHOLDER
    return OPENAI if endpoint.stt_model and has_key else ""


def create_voice(voice_type: str) -> Voice:
    """Returns a new speech provider for `voice_type` ("openai": the model provider's endpoint)."""
    from config import conf  # lazy: importing voice/ must not need a loaded config

    if (voice_type or "").strip().lower() != OPENAI:
        raise ValueError(f"unknown voice type {voice_type!r}; known types: {', '.join(KNOWN_VOICE_TYPES)}")
    from models.openai_http import client_from_conf
    from models.providers import resolve_endpoint
    from voice.openai_voice import OpenAIVoice

    get = conf().get
    endpoint = resolve_endpoint(get)
    return OpenAIVoice(
        client_from_conf(get, endpoint.api_key, endpoint.api_base),
        stt_model=endpoint.stt_model or "whisper-1",
        tts_model=get("text_to_voice_model", "") or "tts-1",
        tts_voice=get("tts_voice_id", "") or "alloy",
    )
