"""Invariant 6 (humans win) and the system events: welcome, takeover, hand-back, recall, 95018."""

from __future__ import annotations

import requests


def _send_attempts(emu, user: str) -> int:
    """kf/send_msg requests for ``user`` that reached the emulator, accepted or refused."""
    return sum(
        1
        for entry in emu.protocol_log()
        if entry.get("kind") == "api"
        and str(entry.get("api", "")).endswith("kf/send_msg")
        and ((entry.get("request") or {}).get("body") or {}).get("touser") == user
    )


def _trans_to_human(emu, kf: str, user: str) -> None:
    token = requests.get(
        emu.api_base + "gettoken", params={"corpid": emu.corp_id, "corpsecret": emu.secret}, timeout=5
    ).json()["access_token"]
    answer = requests.post(
        emu.api_base + "kf/service_state/trans",
        params={"access_token": token},
        json={"open_kfid": kf, "external_userid": user, "service_state": 3, "servicer_userid": "zhangsan"},
        timeout=5,
    ).json()
    assert answer["errcode"] == 0, answer
    assert emu.service_state(kf, user) == 3


def test_enter_session_sends_one_welcome(emu, runner):
    channel = runner.start(wechatcom_kf_welcome_text="您好，我是智能客服")
    user = emu.add_customer("访客")
    code = emu.enter_session(emu.default_kfid, user, wait=True)
    assert code
    sends = emu.wait_for_sends(1, timeout=10)
    assert channel.wait_idle(10)
    assert [(s.api, s.touser, s.text) for s in sends] == [("send_msg_on_event", user, "您好，我是智能客服")]
    emu.fire_callback(emu.default_kfid)  # a repeated callback does not welcome twice
    assert channel.wait_idle(10)
    assert len(emu.sends) == 1


def test_no_welcome_without_welcome_text(emu, runner):
    channel = runner.start()
    user = emu.add_customer("访客")
    emu.enter_session(emu.default_kfid, user, wait=True)
    emu.customer_text(emu.default_kfid, user, "在吗", wait=True)
    emu.wait_for_sends(1, timeout=10)
    assert channel.wait_idle(10)
    assert [s.api for s in emu.sends] == ["send_msg"]


def test_receptionist_message_silences_the_bot_until_hand_back(emu, runner):
    kf = emu.default_kfid
    channel = runner.start()
    user, other = emu.add_customer("被接管"), emu.add_customer("其他人")
    emu.customer_text(kf, user, "我有个问题", wait=True)
    emu.wait_for_sends(1, timeout=10)
    emu.servicer_text(kf, user, "您好，我是人工客服", wait=True)
    assert channel.wait_idle(10)
    emu.customer_text(kf, user, "人工你好", wait=True)  # the human owns it: no bot answer
    emu.customer_text(kf, other, "我也有问题", wait=True)  # others are still answered
    emu.wait_for_sends(2, timeout=10)
    assert channel.wait_idle(10)
    assert [s.text for s in emu.sends_to(user)] == ["你说：我有个问题"]
    assert [s.text for s in emu.sends_to(other)] == ["你说：我也有问题"]
    emu.hand_back(kf, user, wait=True)
    emu.customer_text(kf, user, "机器人在吗", wait=True)
    emu.wait_for_sends(3, timeout=10)
    assert channel.wait_idle(10)
    assert [s.text for s in emu.sends_to(user)] == ["你说：我有个问题", "你说：机器人在吗"]
    assert _send_attempts(emu, user) == 2  # silence means no attempt at all, not a refused one


def test_transfer_to_a_receptionist_silences_the_bot(emu, runner):
    kf = emu.default_kfid
    channel = runner.start()
    user = emu.add_customer("转人工")
    emu.take_over(kf, user, wait=True)
    assert channel.wait_idle(10)
    emu.customer_text(kf, user, "还在吗", wait=True)
    assert channel.wait_idle(10)
    assert emu.sends_to(user) == []
    assert _send_attempts(emu, user) == 0
    assert emu.service_state(kf, user) == 3  # not moved to the bot
    assert _api_calls(emu, "kf/service_state/trans", user) == []
    emu.hand_back(kf, user, wait=True)
    emu.customer_text(kf, user, "回来了", wait=True)
    emu.wait_for_sends(1, timeout=10)
    assert [s.text for s in emu.sends_to(user)] == ["你说：回来了"]
    assert channel.wait_idle(10)
    assert emu.service_state(kf, user) == 1


def _api_calls(emu, api: str, user: str) -> list[dict]:
    """Protocol-log entries of ``api`` (e.g. "kf/service_state/trans") about ``user``."""
    return [
        entry
        for entry in emu.protocol_log()
        if entry.get("kind") == "api"
        and str(entry.get("api", "")).endswith(api)
        and ((entry.get("request") or {}).get("body") or {}).get("external_userid") == user
    ]


def test_the_first_reply_claims_the_session_for_the_bot_once(emu, runner):
    kf = emu.default_kfid
    channel = runner.start()
    user = emu.add_customer("新会话")
    emu.customer_text(kf, user, "你好", wait=True)
    emu.wait_for_sends(1, timeout=10)
    assert channel.wait_idle(10)
    assert emu.service_state(kf, user) == 1  # 由智能助手接待
    emu.customer_text(kf, user, "再问一个", wait=True)
    emu.wait_for_sends(2, timeout=10)
    assert channel.wait_idle(10)
    assert len(_api_calls(emu, "kf/service_state/trans", user)) == 1  # once per session
    # The session ends (state 4); the customer's next message opens a new one (0), claimed again.
    emu.hand_back(kf, user, wait=True)
    emu.customer_text(kf, user, "又来了", wait=True)
    emu.wait_for_sends(3, timeout=10)
    assert channel.wait_idle(10)
    assert emu.service_state(kf, user) == 1
    assert len(_api_calls(emu, "kf/service_state/trans", user)) == 2
    assert [s.text for s in emu.sends_to(user)] == ["你说：你好", "你说：再问一个", "你说：又来了"]


def test_a_session_a_human_took_through_the_api_is_not_claimed_nor_answered(emu, runner):
    kf = emu.default_kfid
    channel = runner.start(bot_type="echo")
    user = emu.add_customer("已转人工")
    # Another system moves the session to a receptionist through the API (no event reaches the bot):
    # the claim is refused (95016), the state is asked (3) and the bot stays silent without a send.
    emu.customer_text(kf, user, "问题", notify=False)
    _trans_to_human(emu, kf, user)
    emu.fire_callback(kf)
    assert channel.wait_idle(15)
    assert emu.service_state(kf, user) == 3
    assert emu.sends_to(user) == []
    assert _send_attempts(emu, user) == 0
    assert [r.errcode for r in emu.rejections if r.api.endswith("service_state/trans")] == [95016]
    assert len(_api_calls(emu, "kf/service_state/get", user)) == 1
    assert channel.kf.takeover.is_flagged(kf, user)


def test_95018_stops_the_reply_without_retries(emu, runner):
    kf = emu.default_kfid
    channel = runner.start(bot_type="echo")
    user = emu.add_customer("状态异常")
    emu.customer_text(kf, user, "第一个问题", wait=True)
    emu.wait_for_sends(1, timeout=10)
    assert channel.wait_idle(10)
    # After the bot claimed the session, another system gives it to a receptionist through the API
    # (no event reaches the bot): the bot's next send is refused with 95018.
    _trans_to_human(emu, kf, user)
    emu.customer_text(kf, user, "问题", wait=True)
    assert channel.wait_idle(15)
    assert [s.text for s in emu.sends_to(user)] == ["你说：第一个问题"]
    assert _send_attempts(emu, user) == 2
    assert [r.errcode for r in emu.rejections if r.api.endswith("send_msg")] == [95018]
    assert channel.kf.takeover.is_flagged(kf, user)
    # The next message finds the flag, asks the session state (3) and stays silent: no attempt.
    emu.customer_text(kf, user, "还有一个问题", wait=True)
    assert channel.wait_idle(15)
    assert _send_attempts(emu, user) == 2
    assert emu.service_state(kf, user) == 3


def test_recalled_message_is_not_answered(emu, runner):
    kf = emu.default_kfid
    channel = runner.start()
    user = emu.add_customer("撤回者")
    msgid = emu.customer_text(kf, user, "说错了", notify=False)
    emu.recall(kf, user, msgid, notify=False)
    emu.customer_text(kf, user, "正确的问题", notify=False)
    emu.fire_callback(kf)
    emu.wait_for_sends(1, timeout=10)
    assert channel.wait_idle(10)
    assert [s.text for s in emu.sends_to(user)] == ["你说：正确的问题"]
