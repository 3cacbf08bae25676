"""Each inbound message type becomes the right Context; media is downloaded inside the media folder;
voice is transcribed and answered; an image followed by a question is one turn with the image."""

from __future__ import annotations

import io
import math
import struct
from pathlib import Path

import pytest
from PIL import Image

from bridge.context import ContextType
from channel.wechatcom_kf.outbound.audio import encode_amr
from channel.wechatcom_kf.wechatcom_kf_channel import WechatComKfChannel
from sandbox.fake_openai import FakeOpenAIServer


class RecordingChannel(WechatComKfChannel):
    """Records every Context the channel hands to the host's dispatcher."""

    def __init__(self) -> None:
        super().__init__()
        self.contexts: list = []

    def produce(self, context) -> None:
        self.contexts.append(context)
        super().produce(context)


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def _amr(seconds: float = 1.0) -> bytes:
    rate = 8000
    pcm = b"".join(
        struct.pack("<h", int(6000 * math.sin(2 * math.pi * 300 * i / rate)))
        for i in range(int(rate * seconds))
    )
    return encode_amr(pcm)


@pytest.fixture
def llm():
    server = FakeOpenAIServer(transcription_text="请问营业时间")
    base = server.start()
    try:
        yield server, base
    finally:
        server.stop()


@pytest.fixture
def channel(runner, llm):
    _, base = llm
    return runner.start(
        RecordingChannel,
        bot_type="openai",
        open_ai_api_key="sk-test-key",
        open_ai_api_base=base,
        voice_to_text="openai",
        vision_input=True,
    )


def _only_context(channel, emu, user):
    contexts = [c for c in channel.contexts if c["msg"].external_userid == user]
    assert len(contexts) == 1, contexts
    return contexts[0]


def test_text_becomes_a_text_context(emu, channel):
    user = emu.add_customer()
    msgid = emu.customer_text(emu.default_kfid, user, "你好", wait=True)
    emu.wait_for_sends(1, timeout=15, user=user)
    ctx = _only_context(channel, emu, user)
    assert (ctx.type, ctx.content, ctx["kf_msgids"]) == (ContextType.TEXT, "你好", [msgid])
    assert ctx["session_id"] == f"{emu.default_kfid}:{user}"
    assert emu.sends_to(user)[0].text == "答：你好"


def test_voice_is_transcribed_and_answered(emu, channel, llm):
    server, _ = llm
    user = emu.add_customer()
    emu.customer_media(emu.default_kfid, user, "voice", _amr(), filename="v.amr", wait=True)
    emu.wait_for_sends(1, timeout=20, user=user)
    ctx = _only_context(channel, emu, user)
    assert ctx.type == ContextType.VOICE
    assert Path(ctx.content).is_file()
    assert server.uploads, "the transcription API was called"
    assert emu.sends_to(user)[0].text == "答：请问营业时间"


def test_image_then_question_is_one_turn_that_includes_the_image(emu, channel, llm):
    server, _ = llm
    user = emu.add_customer()
    kf = emu.default_kfid
    image_id = emu.customer_media(kf, user, "image", _png(), filename="a.png", notify=False)
    question_id = emu.customer_text(kf, user, "这是什么颜色", notify=False)
    emu.fire_callback(kf)
    emu.wait_for_sends(1, timeout=15, user=user)
    assert channel.wait_idle(15)
    ctx = _only_context(channel, emu, user)
    assert ctx.type == ContextType.TEXT
    assert ctx["kf_msgids"] == [image_id, question_id]
    assert len(ctx["image_paths"]) == 1 and Path(ctx["image_paths"][0]).is_file()
    assert ctx.content.endswith("这是什么颜色")
    assert [s.text for s in emu.sends_to(user)] == ["答：[用户发送了图片]\n这是什么颜色（收到 1 张图片）"]
    last_user = [m for m in server.requests[-1]["messages"] if m["role"] == "user"][-1]
    assert any(part.get("type") == "image_url" for part in last_user["content"])


def test_an_image_alone_is_answered_after_the_merge_window(emu, channel):
    user = emu.add_customer()
    emu.customer_media(emu.default_kfid, user, "image", _png(), filename="a.png", wait=True)
    emu.wait_for_sends(1, timeout=15, user=user)
    ctx = _only_context(channel, emu, user)
    assert ctx.type == ContextType.TEXT and len(ctx["image_paths"]) == 1


def test_a_hostile_file_name_stays_inside_the_media_folder(emu, channel, runner):
    user = emu.add_customer()
    emu.customer_media(
        emu.default_kfid, user, "file", b"%PDF-1.4 hello" * 10, filename="../../evil", wait=True
    )
    emu.wait_for_sends(1, timeout=15, user=user)
    media_dir = (runner.state_dir / "wechatcom_kf_media").resolve()
    files = [p for p in runner.tmp_path.rglob("*") if p.is_file() and "evil" in p.name]
    assert files == []
    saved = [p for p in media_dir.iterdir() if p.is_file()]
    assert len(saved) == 1 and saved[0].resolve().parent == media_dir
    ctx = _only_context(channel, emu, user)
    assert ctx.type == ContextType.TEXT and "evil" in ctx.content  # the sanitized display name


@pytest.mark.parametrize(
    ("msgtype", "body", "expected"),
    [
        (
            "location",
            {"name": "腾讯大厦", "address": "深圳市南山区", "latitude": 22.54, "longitude": 113.93},
            "腾讯大厦",
        ),
        (
            "link",
            {"title": "新品发布", "desc": "详情", "url": "https://example.com/a", "pic_url": ""},
            "新品发布",
        ),
        ("miniprogram", {"title": "点餐", "appid": "wx123", "pagepath": "p", "thumb_media_id": "x"}, "点餐"),
        ("business_card", {"userid": "zhangsan"}, "名片"),
    ],
)
def test_structured_messages_become_text_contexts(emu, channel, msgtype, body, expected):
    user = emu.add_customer()
    emu.customer_send(emu.default_kfid, user, msgtype, body, wait=True)
    emu.wait_for_sends(1, timeout=15, user=user)
    ctx = _only_context(channel, emu, user)
    assert ctx.type == ContextType.TEXT
    assert expected in ctx.content
