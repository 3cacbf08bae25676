import pytest

from config import conf
from voice.factory import create_voice
from voice.openai_voice import OpenAIVoice


def test_openai_voice_reads_the_shared_connection_keys(monkeypatch):
    cfg = conf()
    monkeypatch.setitem(cfg, "open_ai_api_key", "sk-x")
    monkeypatch.setitem(cfg, "open_ai_api_base", "http://127.0.0.1:9/v1/")
    monkeypatch.setitem(cfg, "request_timeout", 7)
    monkeypatch.setitem(cfg, "tts_voice_id", "nova")
    voice = create_voice("OpenAI")
    assert isinstance(voice, OpenAIVoice)
    assert voice.client.api_base == "http://127.0.0.1:9/v1"
    assert voice.client.timeout == 7.0
    assert voice.tts_voice == "nova"


def test_unknown_voice_type_names_the_known_ones():
    with pytest.raises(ValueError, match="openai") as info:
        create_voice("baidu")
    assert "baidu" in str(info.value)
