import math
import subprocess
import wave
from array import array

import pytest

from bridge.reply import Reply, ReplyType
from channel.wechatcom_kf.desk.texts import CustomerTexts
from channel.wechatcom_kf.outbound import audio
from channel.wechatcom_kf.outbound.media import MediaUpload
from channel.wechatcom_kf.outbound.planner import OutboundPart, plan_reply


def _up(part: OutboundPart) -> MediaUpload:
    assert part.upload is not None
    return part.upload


RATE = 16000


def _sine_wav(path, seconds, rate=RATE):
    period = array("h", (int(8000 * math.sin(2 * math.pi * n / 40)) for n in range(40)))  # 400 Hz
    samples = period * (int(seconds * rate) // len(period))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return str(path)


def _amr_seconds(data, tmp_path):
    exe = audio.amr_ffmpeg()
    assert exe
    path = tmp_path / "probe.amr"
    path.write_bytes(data)
    pcm = subprocess.run(
        [
            exe,
            "-v",
            "error",
            "-i",
            str(path),
            "-f",
            "s16le",
            "-ac",
            "1",
            "-ar",
            "8000",
            "pipe:1",
        ],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    return len(pcm) / 16000


@pytest.fixture(scope="module")
def long_voice(tmp_path_factory):
    return _sine_wav(tmp_path_factory.mktemp("voice") / "long.wav", 150)


def test_ffmpeg_with_amr_encoder_found():
    exe = audio.amr_ffmpeg()
    assert exe
    listing = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, timeout=15).stdout
    assert b"libopencore_amrnb" in listing


def test_150_seconds_become_three_amr_parts(long_voice, tmp_path):
    parts = plan_reply(Reply(ReplyType.VOICE, long_voice), budget=5)
    assert [p.msgtype for p in parts] == ["voice", "voice", "voice"]
    durations = []
    for part in parts:
        assert _up(part).kind == "voice" and _up(part).filename.endswith(".amr")
        assert _up(part).data.startswith(b"#!AMR\n")
        assert len(_up(part).data) <= 2 * 1024 * 1024
        durations.append(_amr_seconds(_up(part).data, tmp_path))
    assert all(0 < d <= 60 for d in durations)
    assert sum(durations) == pytest.approx(150, abs=1)


def test_more_parts_than_budget_ends_with_a_cut_notice(long_voice):
    parts = plan_reply(Reply(ReplyType.VOICE, long_voice), budget=2)
    assert [p.msgtype for p in parts] == ["voice", "text"]
    assert parts[1].body["content"] == CustomerTexts().voice_cut
    only = plan_reply(Reply(ReplyType.VOICE, long_voice), budget=1)
    assert [p.msgtype for p in only] == ["voice"]


def test_short_tail_merged_into_previous_part(tmp_path):
    voice = _sine_wav(tmp_path / "v.wav", 59.6)
    parts = plan_reply(Reply(ReplyType.VOICE, voice), budget=5)
    assert len(parts) == 1
    assert 59 < _amr_seconds(_up(parts[0]).data, tmp_path) <= 60


def test_missing_or_undecodable_voice_gives_text(tmp_path):
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"this is not audio at all" * 10)
    for content in (str(tmp_path / "missing.wav"), str(junk), None):
        parts = plan_reply(Reply(ReplyType.VOICE, content), budget=5)
        assert [p.msgtype for p in parts] == ["text"]
        assert parts[0].body["content"] == CustomerTexts().media_failed_for("voice")
