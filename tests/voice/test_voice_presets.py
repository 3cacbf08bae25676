"""Voice works through the model provider's preset without a second setting, and is off otherwise."""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator

import pytest

from bridge.bridge import VOICE_NOT_ENABLED, VOICE_TO_TEXT, Bridge
from bridge.reply import ReplyType
from config import conf
from sandbox.fake_openai import FakeOpenAIServer
from voice.factory import voice_to_text_type


def settings(**values):
    return lambda key, default=None: values.get(key, default)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"model_provider": "siliconflow", "open_ai_api_key": "k"}, "openai"),
        ({"model_provider": "openai", "open_ai_api_key": "k"}, "openai"),
        ({"open_ai_api_key": "k"}, "openai"),  # no provider, no base URL: OpenAI itself
        ({"open_ai_api_key": "k", "open_ai_api_base": "https://one-api.example.com/v1"}, ""),
        ({"model_provider": "deepseek", "deepseek_api_key": "k"}, ""),  # no transcription API
        ({"model_provider": "siliconflow"}, ""),  # no key
        ({"model_provider": "siliconflow", "open_ai_api_key": "k", "voice_to_text": "off"}, ""),
        ({"model_provider": "deepseek", "deepseek_api_key": "k", "voice_to_text": "openai"}, "openai"),
        ({"model_provider": "nope", "open_ai_api_key": "k"}, ""),
    ],
)
def test_which_speech_to_text_answers_voice(values, expected):
    assert voice_to_text_type(settings(**values)) == expected


def wav_file(tmp_path) -> str:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * 1600)
    path = tmp_path / "voice.wav"
    path.write_bytes(buf.getvalue())
    return str(path)


@pytest.fixture
def bridge() -> Iterator[Bridge]:
    Bridge._drop_instance()
    yield Bridge()
    Bridge._drop_instance()


def test_siliconflow_preset_transcribes_voice_with_its_model_and_no_voice_setting(
    monkeypatch, tmp_path, bridge
):
    cfg = conf()
    with FakeOpenAIServer(transcription_text="我想查快递") as fake:
        for key, value in {
            "model_provider": "siliconflow",
            "open_ai_api_key": "sk-sf",
            "open_ai_api_base": fake.base_url,  # the operator's override, here the fake
            "voice_to_text": "",
            "voice_to_text_model": "",
        }.items():
            monkeypatch.setitem(cfg, key, value)
        bridge.reset()
        reply = bridge.fetch_voice_to_text(wav_file(tmp_path))
        assert (reply.type, reply.content) == (ReplyType.TEXT, "我想查快递")
        (upload,) = fake.uploads
        assert upload["model"] == "FunAudioLLM/SenseVoiceSmall"
        assert fake.hits[-1]["authorization"] == "Bearer sk-sf"


def test_without_a_speech_to_text_the_channel_gets_the_not_enabled_info(monkeypatch, tmp_path, bridge):
    cfg = conf()
    monkeypatch.setitem(cfg, "model_provider", "deepseek")
    monkeypatch.setitem(cfg, "deepseek_api_key", "sk-ds")
    monkeypatch.setitem(cfg, "voice_to_text", "")
    bridge.reset()
    assert bridge.get_bot_type(VOICE_TO_TEXT) == ""
    reply = bridge.fetch_voice_to_text(wav_file(tmp_path))
    assert (reply.type, reply.content) == (ReplyType.INFO, VOICE_NOT_ENABLED)
