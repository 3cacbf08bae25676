"""Invariant 5 and the media rules, end to end: long answers, big images, long voice, big video."""

from __future__ import annotations

import io
import math
import os
import struct
import wave
from pathlib import Path

import pytest
from PIL import Image

from bridge.reply import Reply, ReplyType
from channel.wechatcom_kf.outbound.text import TRUNCATION_MARKER
from sandbox.fake_openai import FakeOpenAIServer

PARAGRAPH = "这是一个很长的回答段落，用来检验分段与截断是否正确。" * 10  # ~780 bytes


@pytest.fixture
def fake_llm():
    server = FakeOpenAIServer(reply_fn=lambda body: "\n\n".join([PARAGRAPH] * 20))  # ~15.6 kB
    base = server.start()
    try:
        yield server, base
    finally:
        server.stop()


def test_a_15000_byte_answer_fits_into_five_sends(emu, runner, fake_llm):
    _, base = fake_llm
    answer = "\n\n".join([PARAGRAPH] * 20)
    assert len(answer.encode("utf-8")) >= 15000
    channel = runner.start(bot_type="openai", open_ai_api_key="sk-test", open_ai_api_base=base)
    user = emu.add_customer("话痨")
    emu.customer_text(emu.default_kfid, user, "请详细介绍一下")
    emu.wait_for_sends(1, timeout=20)
    assert channel.wait_idle(20)
    sends = emu.sends_to(user)
    assert 1 <= len(sends) <= 5
    assert all(s.msgtype == "text" and len(s.text.encode("utf-8")) <= 2048 for s in sends)
    assert sends[-1].text.endswith(TRUNCATION_MARKER)
    assert not [r for r in emu.rejections if r.errcode == 95001]
    assert not emu.rejections


class MediaBot:
    """Answers each customer text with the media reply named by the text."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp

    def reply(self, query: str, context=None) -> Reply:
        if query == "image":
            return Reply(ReplyType.IMAGE, io.BytesIO(_big_png()))
        if query == "voice":
            return Reply(ReplyType.VOICE, str(_wav(self.tmp / "long.wav", seconds=150)))
        if query == "video":
            path = self.tmp / "huge.mp4"
            path.write_bytes(b"\0" * (11 * 1024 * 1024))
            return Reply(ReplyType.VIDEO, str(path))
        return Reply(ReplyType.TEXT, f"unknown {query}")


def _big_png() -> bytes:
    """A ~30 MB PNG (random pixels do not compress)."""
    side = 3300
    img = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=0)
    data = out.getvalue()
    assert len(data) > 30 * 1024 * 1024
    return data


def _wav(path: Path, seconds: int) -> Path:
    rate = 8000
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = b"".join(
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(rate)
        )
        w.writeframes(frames * seconds)
    return path


@pytest.fixture
def media_channel(emu, runner, tmp_path):
    return runner.start(bot=MediaBot(tmp_path))


def test_a_30_mb_png_arrives_as_an_accepted_image(emu, media_channel):
    user = emu.add_customer("要图片")
    emu.customer_text(emu.default_kfid, user, "image")
    sends = emu.wait_for_sends(1, timeout=60, user=user)
    assert [s.msgtype for s in sends] == ["image"]
    uploaded = emu.uploaded_media(sends[0].body["media_id"])
    assert uploaded.kind == "image"
    assert len(uploaded.data) <= 10 * 1024 * 1024
    assert not emu.rejections


def test_a_150_s_voice_arrives_as_three_amr_parts(emu, media_channel):
    user = emu.add_customer("要语音")
    emu.customer_text(emu.default_kfid, user, "voice")
    emu.wait_for_sends(3, timeout=60, user=user)
    assert media_channel.wait_idle(30)
    sends = emu.sends_to(user)
    assert [s.msgtype for s in sends] == ["voice", "voice", "voice"]
    for sent in sends:
        uploaded = emu.uploaded_media(sent.body["media_id"])
        assert uploaded.data.startswith(b"#!AMR\n")
        assert len(uploaded.data) <= 2 * 1024 * 1024
    assert not emu.rejections  # the emulator refuses AMR parts over 60 s


def test_an_oversized_video_becomes_a_text_notice(emu, media_channel):
    user = emu.add_customer("要视频")
    emu.customer_text(emu.default_kfid, user, "video")
    sends = emu.wait_for_sends(1, timeout=30, user=user)
    assert media_channel.wait_idle(30)
    assert [s.msgtype for s in sends] == ["text"]
    assert "视频" in sends[0].text
    assert not emu.rejections
