"""PartSender against the real KfApi client and the WeCom emulator, over real HTTP on loopback."""

import io

import pytest
from PIL import Image

from bridge.reply import Reply, ReplyType
from channel.wechatcom_kf.api import KfApi
from channel.wechatcom_kf.desk.texts import CustomerTexts
from channel.wechatcom_kf.errors import KfApiError, KfNetworkError, KfSendLimitReached, KfSessionStateInvalid
from channel.wechatcom_kf.outbound.media import MediaUpload
from channel.wechatcom_kf.outbound.msgid import make_msgid
from channel.wechatcom_kf.outbound.planner import OutboundPart, plan_reply, text_part
from channel.wechatcom_kf.outbound.sender import Accepted, PartSender


@pytest.fixture
def api(emu):
    client = KfApi(emu.corp_id, emu.secret, api_base=emu.api_base, timeout=5)
    yield client
    client.close()


def _customer(emu, text="你好"):
    user = emu.add_customer(nickname="测试")
    inbound = emu.customer_text(emu.default_kfid, user, text, notify=False)
    return user, inbound


def _send(sender, emu, user, part, msgid, notice_sent=False):
    return sender.send(part, touser=user, open_kfid=emu.default_kfid, msgid=msgid, notice_sent=notice_sent)


def test_a_part_is_sent_with_its_msgid_and_a_resend_is_recognised(emu, api):
    user, inbound = _customer(emu)
    sender = PartSender(api)
    msgid = make_msgid(inbound, 0)
    assert _send(sender, emu, user, text_part("第一段"), msgid) is Accepted.SENT
    assert _send(sender, emu, user, text_part("第一段"), msgid) is Accepted.DUPLICATE
    assert [(s.text, s.msgid) for s in emu.sends_to(user)] == [("第一段", msgid)]


def test_a_too_long_text_is_a_failure_not_a_duplicate(emu, api):
    """The emulator answers 40058 for a 2,049-byte text, the same code as for a reused msgid."""
    user, inbound = _customer(emu)
    with pytest.raises(KfApiError) as info:
        _send(PartSender(api), emu, user, text_part("字" * 683), make_msgid(inbound, 0))  # 2,049 bytes
    assert info.value.errcode == 40058 and not info.value.retryable
    assert emu.sends_to(user) == []


def test_refusals_are_raised_with_their_type(emu, api):
    user, inbound = _customer(emu)
    sender = PartSender(api)
    for n in range(5):
        assert _send(sender, emu, user, text_part(f"第{n}条"), make_msgid(inbound, n)) is Accepted.SENT
    with pytest.raises(KfSendLimitReached):
        _send(sender, emu, user, text_part("第6条"), make_msgid(inbound, 5))
    emu.take_over(emu.default_kfid, user, notify=False)
    with pytest.raises(KfSessionStateInvalid):
        _send(sender, emu, user, text_part("人工了"), make_msgid(inbound, 6))


def test_a_transient_failure_is_raised_as_retryable(emu, api):
    user, inbound = _customer(emu)
    api.get_service_state(emu.default_kfid, user)  # a token first
    emu.faults.error_5xx_rate = 1.0
    with pytest.raises(KfNetworkError) as info:
        _send(PartSender(api), emu, user, text_part("你好"), make_msgid(inbound, 0))
    assert info.value.retryable


def test_media_parts_are_uploaded_and_sent(emu, api, tmp_path):
    user, inbound = _customer(emu)
    buf = io.BytesIO()
    Image.new("RGB", (64, 32), (9, 99, 199)).save(buf, format="PNG")
    [image] = plan_reply(Reply(ReplyType.IMAGE, buf), budget=5)
    doc = tmp_path / "说明.txt"
    doc.write_bytes("一份说明文件".encode() * 10)
    [document] = plan_reply(Reply(ReplyType.FILE, str(doc)), budget=4)
    sender = PartSender(api)
    assert _send(sender, emu, user, image, make_msgid(inbound, 0)) is Accepted.SENT
    assert _send(sender, emu, user, document, make_msgid(inbound, 1)) is Accepted.SENT
    sent_image, sent_doc = emu.sends_to(user)
    assert (sent_image.msgtype, sent_doc.msgtype) == ("image", "file")
    assert (
        image.upload is not None and emu.uploaded_media(sent_image.body["media_id"]).data == image.upload.data
    )
    stored = emu.uploaded_media(sent_doc.body["media_id"])
    assert stored.filename == "说明.txt" and stored.data == doc.read_bytes()


def test_a_refused_upload_becomes_one_text_notice(emu, api):
    user, inbound = _customer(emu)
    bad = OutboundPart("image", {}, MediaUpload("image", "x.png", b"this is not a png at all", "image/png"))
    sender = PartSender(api)
    assert _send(sender, emu, user, bad, make_msgid(inbound, 0)) is Accepted.NOTICE
    assert _send(sender, emu, user, bad, make_msgid(inbound, 1), notice_sent=True) is Accepted.SKIPPED
    assert [s.text for s in emu.sends_to(user)] == [CustomerTexts().media_failed_for("image")]


def test_an_upload_during_an_outage_is_retryable_not_a_notice(emu, api):
    user, inbound = _customer(emu)
    api.get_service_state(emu.default_kfid, user)
    emu.faults.error_5xx_rate = 1.0
    good = OutboundPart(
        "image", {}, MediaUpload("image", "x.png", b"\x89PNG\r\n\x1a\n" + b"0" * 64, "image/png")
    )
    with pytest.raises(KfNetworkError):
        _send(PartSender(api), emu, user, good, make_msgid(inbound, 0))
    emu.faults.error_5xx_rate = 0.0
    assert emu.sends_to(user) == []


class _BrokenApi:
    def upload_media(self, kind, filename, data, content_type):
        raise AssertionError("no media in this test")

    def send_msg(self, touser, open_kfid, msgtype, body, msgid):
        raise RuntimeError("boom")


def test_an_unexpected_exception_is_raised_as_a_kf_error():
    with pytest.raises(KfApiError):
        PartSender(_BrokenApi()).send(text_part("x"), touser="u", open_kfid="k", msgid="m", notice_sent=False)
