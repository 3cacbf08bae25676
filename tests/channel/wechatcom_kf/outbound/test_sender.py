"""ReplySender against the real KfApi client and the WeCom emulator, over real HTTP on loopback."""

import io

import pytest
from PIL import Image

from bridge.reply import Reply, ReplyType
from channel.wechatcom_kf.api import KfApi
from channel.wechatcom_kf.errors import KfApiError, KfSendLimitReached, KfSessionStateInvalid
from channel.wechatcom_kf.outbound.media import MediaUpload
from channel.wechatcom_kf.outbound.msgid import make_msgid
from channel.wechatcom_kf.outbound.planner import OutboundPart, plan_reply, text_part
from channel.wechatcom_kf.outbound.sender import ReplySender


def _up(part: OutboundPart) -> MediaUpload:
    assert part.upload is not None
    return part.upload


@pytest.fixture
def api(emu):
    client = KfApi(
        emu.corp_id, emu.secret, api_base=emu.api_base, timeout=5, max_attempts=2, backoff_base=0.01
    )
    yield client
    client.close()


def _customer(emu, text="你好"):
    user = emu.add_customer(nickname="测试")
    inbound = emu.customer_text(emu.default_kfid, user, text, notify=False)
    return user, inbound


def _send_calls(emu, user):
    return [
        entry
        for entry in emu.protocol_log()
        if entry["api"] == "kf/send_msg" and entry["request"].get("body", {}).get("touser") == user
    ]


def test_three_text_parts_with_deterministic_msgids_then_resend_is_duplicates(emu, api):
    user, inbound = _customer(emu)
    parts = [text_part("第一段"), text_part("第二段"), text_part("第三段")]
    sender = ReplySender(api)
    first = sender.send(parts, touser=user, open_kfid=emu.default_kfid, msgid_base=inbound)
    assert (first.sent, first.skipped_duplicates, first.stopped_by) == (3, 0, None)
    sends = emu.sends_to(user)
    assert [s.text for s in sends] == ["第一段", "第二段", "第三段"]
    assert [s.msgid for s in sends] == [make_msgid(inbound, i) for i in range(3)]

    again = sender.send(parts, touser=user, open_kfid=emu.default_kfid, msgid_base=inbound)
    assert (again.sent, again.duplicates, again.stopped_by) == (0, 3, None)
    assert again.delivered == 3
    assert [s.text for s in emu.sends_to(user)] == ["第一段", "第二段", "第三段"]


def test_taken_over_session_stops_after_one_call(emu, api):
    user, inbound = _customer(emu)
    emu.take_over(emu.default_kfid, user, notify=False)
    parts = [text_part("一"), text_part("二"), text_part("三")]
    outcome = ReplySender(api).send(parts, touser=user, open_kfid=emu.default_kfid, msgid_base=inbound)
    assert outcome.sent == 0 and outcome.skipped_duplicates == 0
    assert isinstance(outcome.stopped_by, KfSessionStateInvalid)
    assert outcome.stopped_by.errcode == 95018
    assert len(_send_calls(emu, user)) == 1
    assert emu.sends_to(user) == []


def test_sixth_part_stops_on_the_send_limit(emu, api):
    user, inbound = _customer(emu)
    parts = [text_part(f"第{n}条") for n in range(7)]
    outcome = ReplySender(api).send(parts, touser=user, open_kfid=emu.default_kfid, msgid_base=inbound)
    assert outcome.sent == 5
    assert isinstance(outcome.stopped_by, KfSendLimitReached)
    assert len(_send_calls(emu, user)) == 6


def test_media_parts_uploaded_and_sent(emu, api, tmp_path):
    user, inbound = _customer(emu)
    buf = io.BytesIO()
    Image.new("RGB", (64, 32), (9, 99, 199)).save(buf, format="PNG")
    parts = plan_reply(Reply(ReplyType.IMAGE, buf), budget=5)
    doc = tmp_path / "说明.txt"
    doc.write_bytes("一份说明文件".encode() * 10)
    parts += plan_reply(Reply(ReplyType.FILE, str(doc)), budget=4)
    outcome = ReplySender(api).send(parts, touser=user, open_kfid=emu.default_kfid, msgid_base=inbound)
    assert (outcome.sent, outcome.stopped_by) == (2, None)
    image, document = emu.sends_to(user)
    assert (image.msgtype, document.msgtype) == ("image", "file")
    assert emu.uploaded_media(image.body["media_id"]).data == _up(parts[0]).data
    stored = emu.uploaded_media(document.body["media_id"])
    assert stored.filename == "说明.txt" and stored.data == doc.read_bytes()


def test_long_voice_accepted_by_the_emulator(emu, api, tmp_path):
    import math
    import wave
    from array import array

    path = tmp_path / "long.wav"
    period = array("h", (int(6000 * math.sin(2 * math.pi * n / 20)) for n in range(20)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes((period * (8000 * 150 // 20)).tobytes())
    user, inbound = _customer(emu)
    parts = plan_reply(Reply(ReplyType.VOICE, str(path)), budget=5)
    outcome = ReplySender(api).send(parts, touser=user, open_kfid=emu.default_kfid, msgid_base=inbound)
    assert (outcome.sent, outcome.stopped_by) == (3, None)
    assert [s.msgtype for s in emu.sends_to(user)] == ["voice"] * 3
    assert not [r for r in emu.rejections if r.api == "media/upload"]


def test_failed_upload_replaced_by_one_text_notice(emu, api):
    user, inbound = _customer(emu)
    bad = MediaUpload("image", "x.png", b"this is not a png at all", "image/png")
    parts = [text_part("请看图"), OutboundPart("image", {}, bad), OutboundPart("image", {}, bad)]
    outcome = ReplySender(api).send(parts, touser=user, open_kfid=emu.default_kfid, msgid_base=inbound)
    assert (outcome.sent, outcome.stopped_by) == (2, None)
    assert [s.text for s in emu.sends_to(user)] == ["请看图", "图片发送失败，请稍后再试"]


class _BrokenApi:
    def upload_media(self, kind, filename, data, content_type):
        raise AssertionError("no media in this test")

    def send_msg(self, touser, open_kfid, msgtype, body, msgid):
        raise RuntimeError("boom")


def test_unexpected_exception_is_returned_not_raised():
    outcome = ReplySender(_BrokenApi()).send([text_part("x")] * 2, touser="u", open_kfid="k", msgid_base="m")
    assert outcome.sent == 0
    assert isinstance(outcome.stopped_by, KfApiError)
