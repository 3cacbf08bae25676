"""Creates a speech provider by type name; the only place in voice/ that reads the configuration."""

from __future__ import annotations

from voice.voice import Voice

KNOWN_VOICE_TYPES = ("openai",)


def create_voice(voice_type: str) -> Voice:
    """Returns a new speech provider for `voice_type` ("openai")."""
    from config import conf  # lazy: importing voice/ must not need a loaded config

    if (voice_type or "").strip().lower() != "openai":
        raise ValueError(f"unknown voice type {voice_type!r}; known types: {', '.join(KNOWN_VOICE_TYPES)}")
    from models.openai_http import client_from_conf
    from voice.openai_voice import OpenAIVoice

    get = conf().get
    return OpenAIVoice(
        client_from_conf(get),
        stt_model=get("voice_to_text_model", "") or "whisper-1",
        tts_model=get("text_to_voice_model", "") or "tts-1",
        tts_voice=get("tts_voice_id", "") or "alloy",
    )
