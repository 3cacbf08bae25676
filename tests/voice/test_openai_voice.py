import logging
import os
import socket
import subprocess
import wave

import pytest

from bridge.reply import ReplyType
from models.openai_http import OpenAIHttpClient
from sandbox.fake_openai import FakeOpenAIServer
from voice.audio_convert import any_to_amr, audio_duration, ffmpeg_exe
from voice.openai_voice import OpenAIVoice

API_KEY = "sk-voice-SECRET-42"


@pytest.fixture
def fake():
    with FakeOpenAIServer(transcription_text="我想查询订单") as server:
        yield server


def make_voice(api_base: str, **kwargs) -> OpenAIVoice:
    # A short backoff keeps the retry tests fast.
    client = OpenAIHttpClient(
        API_KEY, api_base, timeout=5.0, max_attempts=2, backoff_base=0.01, backoff_cap=0.05
    )
    return OpenAIVoice(client, **kwargs)


def make_amr(tmp_path, seconds: float = 2) -> str:
    wav = tmp_path / "src.wav"
    cmd = [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi"]
    cmd += ["-i", f"sine=frequency=440:duration={seconds}", str(wav)]
    subprocess.run(cmd, check=True, timeout=60)
    amr = tmp_path / "voice.amr"
    any_to_amr(str(wav), str(amr))
    return str(amr)


def test_amr_voice_is_converted_to_wav_and_transcribed(fake, tmp_path):
    reply = make_voice(fake.base_url, stt_model="whisper-x").voiceToText(make_amr(tmp_path))
    assert (reply.type, reply.content) == (ReplyType.TEXT, "我想查询订单")
    upload = fake.uploads[-1]
    assert upload["model"] == "whisper-x"
    assert upload["filename"] == "voice.wav"
    assert upload["data"][:4] == b"RIFF"
    assert upload["size"] == len(upload["data"]) > 16000 * 2  # about 2 s of 16 kHz 16-bit audio


def test_supported_format_uploaded_unchanged(fake, tmp_path):
    src = tmp_path / "clip.mp3"
    subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=1", str(src)],
        check=True,
        timeout=60,
    )
    assert make_voice(fake.base_url).voiceToText(str(src)).type == ReplyType.TEXT
    assert fake.uploads[-1]["data"] == src.read_bytes()


def test_undecodable_voice_gives_error_reply(fake, tmp_path):
    bad = tmp_path / "bad.amr"
    bad.write_bytes(b"garbage" * 100)
    reply = make_voice(fake.base_url).voiceToText(str(bad))
    assert reply.type == ReplyType.ERROR
    assert fake.uploads == []


@pytest.mark.parametrize("fmt", ["wav", "mp3"])
def test_text_to_voice_writes_real_audio(fake, fmt):
    voice = make_voice(fake.base_url, response_format=fmt, tts_voice="nova")
    reply = voice.textToVoice("您好，欢迎光临")  # 7 characters -> 1.4 s from the fake server
    assert reply.type == ReplyType.VOICE
    path = reply.content
    assert path.endswith("." + fmt) and os.path.isfile(path)
    assert os.path.dirname(path) == voice.out_dir
    assert abs(audio_duration(path) - 1.4) < 0.2
    if fmt == "wav":
        with wave.open(path, "rb") as w:
            assert w.getnframes() > 0
    assert fake.speech_requests[-1]["voice"] == "nova"
    assert fake.speech_requests[-1]["response_format"] == fmt


def test_text_to_voice_retries_then_succeeds(fake):
    fake.fail_next(1, 503)
    reply = make_voice(fake.base_url, response_format="wav").textToVoice("你好")
    assert reply.type == ReplyType.VOICE
    assert fake.calls == 2


def test_server_down_gives_error_replies_without_key(tmp_path, caplog):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    caplog.set_level(logging.DEBUG)
    voice = make_voice(f"http://127.0.0.1:{port}/v1")
    for reply in (voice.voiceToText(make_amr(tmp_path, 1)), voice.textToVoice("你好")):
        assert reply.type == ReplyType.ERROR
        assert API_KEY not in reply.content and "127.0.0.1" not in reply.content
    assert API_KEY not in caplog.text


def test_empty_text_is_an_error_without_a_call(fake):
    assert make_voice(fake.base_url).textToVoice("  ").type == ReplyType.ERROR
    assert fake.calls == 0
