"""kf/send_msg limits: 2048 bytes, 5 per customer message, 48 h, msgid rules, service state."""

from __future__ import annotations

import time

import pytest


@pytest.fixture
def chat(emu):
    kf, user = emu.default_kfid, emu.add_customer()
    emu.customer_text(kf, user, "你好", notify=False)
    return kf, user


def text(kf: str, user: str, content: str, **extra: str) -> dict:
    return {"touser": user, "open_kfid": kf, "msgtype": "text", "text": {"content": content}, **extra}


def test_successful_send_is_recorded_with_the_customer_message_it_answers(emu, api, chat):
    kf, user = chat
    inbound = emu.messages(kf)[-1]["msgid"]
    answer = api.post("kf/send_msg", text(kf, user, "您好", msgid="r1_0"))
    assert answer == {"errcode": 0, "errmsg": "ok", "msgid": "r1_0"}
    (sent,) = emu.sends_to(user)
    assert (sent.api, sent.open_kfid, sent.msgid, sent.msgtype, sent.text) == (
        "send_msg",
        kf,
        "r1_0",
        "text",
        "您好",
    )
    assert sent.reply_to == inbound
    assert emu.wait_for_sends(1, timeout=1) == [sent]


def test_generated_msgid_when_none_given(emu, api, chat):
    answer = api.post("kf/send_msg", text(chat[0], chat[1], "x"))
    assert answer["errcode"] == 0 and answer["msgid"]


def test_text_limit_is_2048_utf8_bytes(emu, api, chat):
    assert api.post("kf/send_msg", text(chat[0], chat[1], "好" * 682 + "ab"))["errcode"] == 0  # 2048 bytes
    assert api.post("kf/send_msg", text(chat[0], chat[1], "好" * 683))["errcode"] == 40058  # 2049 bytes
    assert [r.errcode for r in emu.rejections] == [40058]


@pytest.mark.parametrize("msgid", ["a" * 33, "含中文", "a b", "a/b"])
def test_msgid_format(emu, api, chat, msgid):
    assert api.post("kf/send_msg", text(chat[0], chat[1], "x", msgid=msgid))["errcode"] == 40058


def test_msgid_unique_per_account(emu, api, chat):
    kf, user = chat
    assert api.post("kf/send_msg", text(kf, user, "x", msgid="dup-1"))["errcode"] == 0
    again = api.post("kf/send_msg", text(kf, user, "x", msgid="dup-1"))
    assert again == {"errcode": 40058, "errmsg": "msgid exists"}
    assert len(emu.sends) == 1
    other = emu.add_account()
    emu.customer_text(other, user, "hi", notify=False)
    assert api.post("kf/send_msg", text(other, user, "x", msgid="dup-1"))["errcode"] == 0


def test_five_sends_per_customer_message_then_95001_until_the_customer_writes(emu, api, chat):
    kf, user = chat
    codes = [api.post("kf/send_msg", text(kf, user, f"p{i}"))["errcode"] for i in range(6)]
    assert codes == [0, 0, 0, 0, 0, 95001]
    second = emu.customer_text(kf, user, "again", notify=False)
    assert api.post("kf/send_msg", text(kf, user, "p6"))["errcode"] == 0
    assert emu.sends[-1].reply_to == second


def test_budget_counts_from_the_latest_customer_message_only(emu, api, chat):
    kf, user = chat
    emu.customer_text(kf, user, "two", notify=False)  # two unanswered messages still give 5, not 10
    codes = [api.post("kf/send_msg", text(kf, user, f"p{i}"))["errcode"] for i in range(6)]
    assert codes.count(0) == 5 and codes[-1] == 95001


def test_48h_after_the_customer_message_is_95002(emu, api):
    kf, user = emu.default_kfid, emu.add_customer()
    emu.customer_text(kf, user, "old", send_time=time.time() - 49 * 3600, notify=False)
    assert api.post("kf/send_msg", text(kf, user, "late"))["errcode"] == 95002


def test_state_3_is_95018_and_unknown_customer_is_40096(emu, api, chat):
    kf, user = chat
    emu.take_over(kf, user, notify=False)
    assert api.post("kf/send_msg", text(kf, user, "x"))["errcode"] == 95018
    assert api.post("kf/send_msg", text(kf, "wmnobody", "x"))["errcode"] == 40096


def test_customer_who_never_wrote_cannot_be_messaged(emu, api):
    assert api.post("kf/send_msg", text(emu.default_kfid, emu.add_customer(), "x"))["errcode"] == 95018


def test_media_id_must_exist_and_match_the_msgtype(emu, api, chat):
    kf, user = chat
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
    media_id = api.upload("image", png, "a.png")["media_id"]
    body = {"touser": user, "open_kfid": kf, "msgtype": "file", "file": {"media_id": media_id}}
    assert api.post("kf/send_msg", body)["errcode"] == 40007
    body = {"touser": user, "open_kfid": kf, "msgtype": "image", "image": {"media_id": "nope"}}
    assert api.post("kf/send_msg", body)["errcode"] == 40007
    body["image"] = {"media_id": media_id}
    assert api.post("kf/send_msg", body)["errcode"] == 0


def test_menu_limits(emu, api, chat):
    kf, user = chat
    items = [{"type": "click", "click": {"id": str(i), "content": f"选项{i}"}} for i in range(11)]
    body = {"touser": user, "open_kfid": kf, "msgtype": "msgmenu", "msgmenu": {"list": items}}
    assert api.post("kf/send_msg", body)["errcode"] == 95008
    body["msgmenu"] = {"list": [{"type": "bogus", "bogus": {}}]}
    assert api.post("kf/send_msg", body)["errcode"] == 95009
    body["msgmenu"] = {"head_content": "请选择", "list": items[:3]}
    assert api.post("kf/send_msg", body)["errcode"] == 0


def test_rejection_keeps_a_redacted_request_summary(emu, api, chat):
    kf, user = chat
    api.post("kf/send_msg", text(kf, user, "好" * 700))
    (rejection,) = emu.rejections
    assert rejection.api == "kf/send_msg" and rejection.errcode == 40058
    assert rejection.request["query"]["access_token"] == "***"
    assert rejection.request["body"]["touser"] == user
