"""The customer-service desk end to end, through the emulator over real HTTP: hand-off to a human
(keyword, menu click, failing model, the bot's marker, a plugin's flag), refused transfers, business
hours with each policy, the welcome menu, operator texts, the flood guard, nickname and AI label."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bridge.context import Context
from bridge.reply import Reply, ReplyType
from channel.wechatcom_kf.desk.texts import CustomerTexts

DEFAULT = CustomerTexts()


class CountingBot:
    """Answers "答：<query>" (or what ``answer`` returns); records every call and its context."""

    def __init__(self, answer: Any = None) -> None:
        self.calls: list[tuple[str, Context | None]] = []
        self._answer = answer
        self._lock = threading.Lock()

    def reply(self, query: str, context: Context | None = None) -> Reply:
        with self._lock:
            self.calls.append((query, context))
        if self._answer is not None:
            result: Reply = self._answer(query, context)
            return result
        return Reply(ReplyType.TEXT, f"答：{query}")

    @property
    def queries(self) -> list[str]:
        return [q for q, _ in self.calls]


def _texts(emu, user: str) -> list[tuple[str, str]]:
    return [(s.api, s.text or s.msgtype) for s in emu.sends_to(user)]


def _settle(channel, emu, count: int, user: str | None = None) -> None:
    emu.wait_for_sends(count, timeout=10, user=user)
    assert channel.wait_idle(10)


def test_the_keyword_hands_off_to_a_receiving_receptionist_and_the_bot_stays_silent(emu, runner):
    kf, bot = emu.default_kfid, CountingBot()
    channel = runner.start(bot=bot, wechatcom_kf_handoff_text="马上为您接通人工")
    user = emu.add_customer("要人工")
    emu.customer_text(kf, user, "请转人工！", wait=True)
    _settle(channel, emu, 1, user)
    assert emu.service_state(kf, user) == 3 and emu.state.sessions[(kf, user)].servicer_userid == "zhangsan"
    assert _texts(emu, user) == [("send_msg_on_event", "马上为您接通人工")]
    emu.customer_text(kf, user, "人呢？", wait=True)  # the receptionist has the session now
    assert channel.wait_idle(10)
    assert bot.queries == [] and len(emu.sends_to(user)) == 1
    emu.hand_back(kf, user, wait=True)  # the receptionist ends the session
    emu.customer_text(kf, user, "还有个问题", wait=True)
    _settle(channel, emu, 2, user)
    assert bot.queries == ["还有个问题"]
    assert _texts(emu, user)[-1] == ("send_msg", "答：还有个问题")


def test_a_sentence_that_mentions_a_human_is_answered_by_the_bot(emu, runner):
    kf, bot = emu.default_kfid, CountingBot()
    channel = runner.start(bot=bot)
    user = emu.add_customer("问问题")
    emu.customer_text(kf, user, "人工智能客服能做什么？", wait=True)
    _settle(channel, emu, 1, user)
    assert bot.queries == ["人工智能客服能做什么？"] and emu.service_state(kf, user) == 1


def test_with_nobody_receiving_the_customer_is_queued(emu, runner):
    kf = emu.default_kfid
    emu.set_servicer_status("zhangsan", 1)
    channel = runner.start(bot=CountingBot())
    user = emu.add_customer("排队")
    emu.customer_text(kf, user, "人工客服", wait=True)
    _settle(channel, emu, 1, user)
    assert emu.service_state(kf, user) == 2
    assert _texts(emu, user) == [("send_msg_on_event", DEFAULT.queue)]


def test_receptionists_are_chosen_in_turn(emu, runner):
    kf = emu.default_kfid
    emu.add_servicer("lisi")
    channel = runner.start(bot=CountingBot())
    users = [emu.add_customer(f"客户{i}") for i in range(4)]
    for user in users:
        emu.customer_text(kf, user, "转人工", wait=True)
        _settle(channel, emu, 1, user)
    chosen = [emu.state.sessions[(kf, u)].servicer_userid for u in users]
    assert sorted(chosen) == ["lisi", "lisi", "zhangsan", "zhangsan"] and chosen[0] != chosen[1]


def test_a_refused_transfer_tells_the_customer_and_the_bot_goes_on(emu, runner):
    kf, bot = emu.default_kfid, CountingBot()
    emu.faults.trans_errcode, emu.faults.trans_errcode_states = 95016, {2, 3}
    channel = runner.start(bot=bot, wechatcom_kf_handoff_failed_text="转接失败，请稍后再试")
    user = emu.add_customer("转不了")
    emu.customer_text(kf, user, "找人工", wait=True)
    _settle(channel, emu, 1, user)
    assert _texts(emu, user) == [("send_msg", "转接失败，请稍后再试")] and emu.service_state(kf, user) == 1
    emu.faults.trans_errcode = None
    emu.customer_text(kf, user, "那我问个问题", wait=True)
    _settle(channel, emu, 2, user)
    assert bot.queries == ["那我问个问题"]


def test_an_account_without_receptionists_cannot_hand_off(emu, runner):
    kf = emu.default_kfid
    emu.remove_servicer("zhangsan")
    channel = runner.start(bot=CountingBot())
    user = emu.add_customer("没人")
    emu.customer_text(kf, user, "转人工", wait=True)
    _settle(channel, emu, 1, user)
    assert _texts(emu, user) == [("send_msg", DEFAULT.handoff_failed)]
    assert emu.service_state(kf, user) == 1


def test_a_failing_model_gets_the_operator_text_then_a_hand_off(emu, runner):
    kf = emu.default_kfid
    bot = CountingBot(lambda q, c: Reply(ReplyType.ERROR, "Traceback: connection refused"))
    channel = runner.start(
        bot=bot, wechatcom_kf_handoff_after_failures=2, wechatcom_kf_model_error_text="小助手开小差了"
    )
    user = emu.add_customer("模型坏了")
    emu.customer_text(kf, user, "第一问", wait=True)
    _settle(channel, emu, 1, user)
    assert _texts(emu, user) == [("send_msg", "小助手开小差了")] and emu.service_state(kf, user) == 1
    emu.customer_text(kf, user, "第二问", wait=True)
    _settle(channel, emu, 2, user)
    assert emu.service_state(kf, user) == 3 and len(bot.calls) == 2
    assert _texts(emu, user)[-1] == ("send_msg_on_event", DEFAULT.handoff)
    assert not any("ERROR" in (s.text or "") or "Traceback" in (s.text or "") for s in emu.sends)


def test_the_bots_marker_hands_off_after_its_answer(emu, runner):
    kf = emu.default_kfid
    bot = CountingBot(lambda q, c: Reply(ReplyType.TEXT, "这个问题需要人工处理。[转人工]"))
    channel = runner.start(bot=bot)
    user = emu.add_customer("退款")
    emu.customer_text(kf, user, "我要退款", wait=True)
    _settle(channel, emu, 2, user)
    assert _texts(emu, user) == [
        ("send_msg", "这个问题需要人工处理。"),
        ("send_msg_on_event", DEFAULT.handoff),
    ]
    assert emu.service_state(kf, user) == 3


def test_a_plugin_flag_in_the_context_hands_off(emu, runner):
    kf = emu.default_kfid

    def flagging(query: str, context: Context | None) -> Reply:
        assert context is not None
        context["kf_handoff"] = True
        return Reply(ReplyType.TEXT, "好的")

    channel = runner.start(bot=CountingBot(flagging))
    user = emu.add_customer("插件")
    emu.customer_text(kf, user, "投诉", wait=True)
    _settle(channel, emu, 2, user)
    assert [api for api, _ in _texts(emu, user)] == ["send_msg", "send_msg_on_event"]
    assert emu.service_state(kf, user) == 3


def _closed_today() -> dict[str, Any]:
    """Settings that make now a closed day (open every day, except today in Shanghai)."""
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    return {"wechatcom_kf_business_hours": "daily 00:00-24:00", "wechatcom_kf_closed_dates": [today]}


def test_off_hours_with_the_bot_policy_notice_once_then_answers(emu, runner):
    kf, bot = emu.default_kfid, CountingBot()
    channel = runner.start(bot=bot, wechatcom_kf_off_hours_text="今天休息，由 AI 为您服务", **_closed_today())
    user = emu.add_customer("夜猫子")
    emu.customer_text(kf, user, "在吗", wait=True)
    _settle(channel, emu, 1, user)
    emu.customer_text(kf, user, "还在吗", wait=True)
    _settle(channel, emu, 2, user)
    assert [t for _, t in _texts(emu, user)] == ["今天休息，由 AI 为您服务\n\n答：在吗", "答：还在吗"]


def test_off_hours_with_the_notice_policy_does_not_ask_the_bot(emu, runner):
    kf, bot = emu.default_kfid, CountingBot()
    channel = runner.start(bot=bot, wechatcom_kf_off_hours_policy="notice", **_closed_today())
    user = emu.add_customer("休息日")
    emu.customer_text(kf, user, "在吗", wait=True)
    _settle(channel, emu, 1, user)
    emu.customer_text(kf, user, "有人吗", wait=True)
    assert channel.wait_idle(10)
    assert _texts(emu, user) == [("send_msg", DEFAULT.off_hours)]
    assert bot.queries == []


def test_off_hours_with_the_handoff_policy_queues_the_customer(emu, runner):
    kf, bot = emu.default_kfid, CountingBot()
    channel = runner.start(bot=bot, wechatcom_kf_off_hours_policy="handoff", **_closed_today())
    user = emu.add_customer("留言")
    emu.customer_text(kf, user, "我的订单还没到", wait=True)
    _settle(channel, emu, 1, user)
    assert emu.service_state(kf, user) == 2 and bot.queries == []
    assert _texts(emu, user) == [("send_msg_on_event", DEFAULT.off_hours)]


MENU = {
    "list": [
        {"type": "click", "click": {"id": "faq", "content": "常见问题"}},
        {"type": "click", "click": {"id": "handoff", "content": "联系客服"}},
    ],
    "tail_content": "也可以直接输入问题",
}


def test_the_welcome_menu_and_its_items(emu, runner):
    kf, bot = emu.default_kfid, CountingBot()
    channel = runner.start(
        bot=bot, wechatcom_kf_welcome_text="您好！请选择：", wechatcom_kf_welcome_menu=MENU
    )
    user = emu.add_customer("点菜单")
    emu.enter_session(kf, user, wait=True)
    _settle(channel, emu, 1, user)
    welcome = emu.sends_to(user)[0]
    assert welcome.api == "send_msg_on_event" and welcome.msgtype == "msgmenu"
    assert welcome.body["head_content"] == "您好！请选择：" and welcome.body["list"] == MENU["list"]
    emu.customer_click(kf, user, "faq", "常见问题", wait=True)
    _settle(channel, emu, 2, user)
    assert bot.queries == ["常见问题"]
    emu.customer_click(kf, user, "handoff", "联系客服", wait=True)
    _settle(channel, emu, 3, user)
    assert emu.service_state(kf, user) == 3 and bot.queries == ["常见问题"]


def test_a_burst_from_one_customer_is_merged_into_few_model_calls(emu, runner):
    kf, bot = emu.default_kfid, CountingBot()
    channel = runner.start(bot=bot, wechatcom_kf_flood_max_messages=3, wechatcom_kf_flood_window_seconds=30)
    user = emu.add_customer("刷屏")
    for i in range(30):
        emu.customer_text(kf, user, f"第{i}条", notify=False)
    emu.fire_callback(kf)
    assert channel.wait_idle(20)
    asked = "\n".join(bot.queries)
    assert all(f"第{i}条" in asked for i in range(30))  # every message reached the bot
    assert len(bot.calls) <= 3 + 2  # three alone, the other 27 in turns of at most 20
    merged = [t for _, t in _texts(emu, user) if t.startswith("您发送的消息较多")]
    assert merged, _texts(emu, user)


def test_the_bot_sees_the_nickname_and_the_ai_label_is_shown_once(emu, runner):
    kf, bot = emu.default_kfid, CountingBot()
    channel = runner.start(bot=bot, wechatcom_kf_ai_disclosure=True)
    user = emu.add_customer("张三")
    emu.customer_text(kf, user, "你好", wait=True)
    _settle(channel, emu, 1, user)
    emu.customer_text(kf, user, "再见", wait=True)
    _settle(channel, emu, 2, user)
    context = bot.calls[0][1]
    assert context is not None and context["kf_customer"]["nickname"] == "张三"
    assert context["msg"].from_user_nickname == "张三"
    assert [t for _, t in _texts(emu, user)] == [f"{DEFAULT.ai_disclosure}\n\n答：你好", "答：再见"]


def test_info_replies_reach_the_customer_without_a_prefix(emu, runner):
    kf = emu.default_kfid
    channel = runner.start(bot=CountingBot(lambda q, c: Reply(ReplyType.INFO, "会话已重置")))
    user = emu.add_customer("重置")
    emu.customer_text(kf, user, "#reset", wait=True)
    _settle(channel, emu, 1, user)
    assert _texts(emu, user) == [("send_msg", "会话已重置")]


def test_a_receptionist_refused_by_wecom_falls_back_to_the_queue(emu, runner):
    kf = emu.default_kfid
    emu.faults.trans_errcode, emu.faults.trans_errcode_states = 95019, {3}  # stopped in between
    channel = runner.start(bot=CountingBot())
    user = emu.add_customer("刚下线")
    emu.customer_text(kf, user, "人工", wait=True)
    _settle(channel, emu, 1, user)
    assert emu.service_state(kf, user) == 2
    assert _texts(emu, user) == [("send_msg_on_event", DEFAULT.queue)]


def _bomb_png(side: int = 20000) -> bytes:
    """A tiny PNG whose header claims side x side pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (side + 1) * 16)  # only a few rows: the rest is missing
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def test_corrupt_truncated_and_bomb_images_never_reach_the_model(emu, runner):
    from tests.media_samples import tiny_png

    kf, bot = emu.default_kfid, CountingBot()
    channel = runner.start(bot=bot, vision_input=True, wechatcom_kf_merge_window_seconds=0.2)
    good = tiny_png(40, 30)
    bad = {"坏图": b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "半张": good[: len(good) // 2], "炸弹": _bomb_png()}
    for name, data in bad.items():
        user = emu.add_customer(name)
        emu.customer_media(kf, user, "image", data, filename="x.png", wait=True)
        _settle(channel, emu, 1, user)
        assert _texts(emu, user) == [("send_msg", DEFAULT.media_unreadable_for("image"))], name
    assert bot.calls == []
    user = emu.add_customer("好图")
    emu.customer_media(kf, user, "image", good, filename="ok.png", wait=True)
    _settle(channel, emu, 1, user)
    assert len(bot.calls) == 1 and bot.calls[0][1] is not None and bot.calls[0][1].get("image_paths")


def test_a_slow_model_gets_the_thinking_notice_first_and_it_counts_in_the_budget(emu, runner):
    kf = emu.default_kfid
    long_answer = "\n\n".join("长" * 600 for _ in range(6))  # six 1,800-byte parts: more than the budget

    def slow(query: str, _context: Any) -> Reply:
        time.sleep(0.8)
        return Reply(ReplyType.TEXT, long_answer if query == "详细说说" else f"答：{query}")

    bot = CountingBot(slow)
    channel = runner.start(bot=bot, wechatcom_kf_thinking_notice_seconds=0.2)
    user = emu.add_customer("等待")
    emu.customer_text(kf, user, "详细说说", wait=True)
    _settle(channel, emu, 5, user)
    sends = _texts(emu, user)
    assert sends[0] == ("send_msg", DEFAULT.thinking) and len(sends) == 5  # the notice took one of five
    assert sends[-1][1].endswith(DEFAULT.truncated) and len(bot.calls) == 1


def test_a_prompt_model_gets_no_thinking_notice(emu, runner):
    kf, bot = emu.default_kfid, CountingBot()
    channel = runner.start(bot=bot, wechatcom_kf_thinking_notice_seconds=2.0)
    user = emu.add_customer("很快")
    emu.customer_text(kf, user, "你好", wait=True)
    _settle(channel, emu, 1, user)
    time.sleep(2.3)  # past the notice's time: the turn was answered, so nothing more goes out
    assert _texts(emu, user) == [("send_msg", "答：你好")]
