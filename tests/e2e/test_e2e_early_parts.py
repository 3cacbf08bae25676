"""A streamed answer's first parts reach the customer while the model is still writing, end to end
through the emulator: the same parts as without streaming, no more sends, the plan saved as parts
are fixed, and a bot that does not stream (CoW's) changes nothing."""

from __future__ import annotations

import time

from bridge.context import Context
from bridge.reply import Reply, ReplyType
from channel.wechatcom_kf.outbound.early_parts import ON_PARTIAL_TEXT
from channel.wechatcom_kf.outbound.markdown import markdown_to_plain
from channel.wechatcom_kf.outbound.text import split_text

PARAGRAPHS = [f"第{i}段：" + "退货须在签收后七天内申请，商品需保持完好。" * 6 for i in range(1, 16)]
ANSWER = "\n\n".join(PARAGRAPHS)  # three nearly full parts


class StreamingBot:
    """Streams ANSWER line by line through the context's callable, then replies with all of it.
    Before the last paragraph it waits (bounded) to see the customer already has a part."""

    def __init__(self, emu, user: str, stream: bool = True) -> None:
        self.emu, self.user, self.stream = emu, user, stream
        self.calls = 0
        self.parts_seen_before_the_end = -1

    def reply(self, query: str, context: Context | None = None) -> Reply:
        self.calls += 1
        on_partial = context.get(ON_PARTIAL_TEXT) if context is not None and self.stream else None
        so_far = ""
        for i, paragraph in enumerate(PARAGRAPHS):
            so_far += paragraph + ("\n\n" if i < len(PARAGRAPHS) - 1 else "")
            if on_partial is not None:
                on_partial(so_far)
            time.sleep(0.01)
        deadline = time.monotonic() + 3
        while self.stream and not self.emu.sends_to(self.user) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.parts_seen_before_the_end = len(self.emu.sends_to(self.user))
        return Reply(ReplyType.TEXT, so_far)


def _expected() -> list[str]:
    return split_text(markdown_to_plain(ANSWER), max_bytes=2048, max_parts=5)


def test_the_first_parts_arrive_before_the_answer_ends_and_are_the_same_parts(emu, runner):
    kf, user = emu.default_kfid, emu.add_customer("流式")
    bot = StreamingBot(emu, user)
    channel = runner.start(bot=bot)
    emu.customer_text(kf, user, "怎么退货？", wait=True)
    emu.wait_for_sends(3, timeout=10, user=user)
    assert channel.wait_idle(10)
    assert bot.calls == 1 and bot.parts_seen_before_the_end >= 1
    sent = [s.text for s in emu.sends_to(user)]
    assert sent == _expected() and len(sent) == 3  # the same parts, the same number of sends
    assert emu.rejections == []  # no msgid reused, no budget exceeded


def test_the_plan_is_saved_as_parts_are_fixed(emu, runner):
    kf, user = emu.default_kfid, emu.add_customer("计划")
    saved: list[list[str]] = []
    bot = StreamingBot(emu, user)
    channel = runner.start(bot=bot)
    original = channel.kf.deliveries.plans.save

    def spy(base, plan):
        saved.append(list(plan.texts))
        return original(base, plan)

    channel.kf.deliveries.plans.save = spy
    emu.customer_text(kf, user, "怎么退货？", wait=True)
    emu.wait_for_sends(3, timeout=10, user=user)
    assert channel.wait_idle(10)
    expected = _expected()
    assert saved[0] == expected[:1]  # saved when the first part was fixed, before it was sent
    assert expected in saved  # and the whole plan once the answer ended


def test_a_bot_that_does_not_stream_is_answered_as_before(emu, runner):
    kf, user = emu.default_kfid, emu.add_customer("不流式")
    bot = StreamingBot(emu, user, stream=False)
    channel = runner.start(bot=bot)
    emu.customer_text(kf, user, "怎么退货？", wait=True)
    emu.wait_for_sends(3, timeout=10, user=user)
    assert channel.wait_idle(10)
    assert bot.parts_seen_before_the_end == 0 and [s.text for s in emu.sends_to(user)] == _expected()


def test_early_parts_can_be_turned_off(emu, runner):
    kf, user = emu.default_kfid, emu.add_customer("关闭")
    bot = StreamingBot(emu, user)
    channel = runner.start(bot=bot, wechatcom_kf_stream_early_parts=False)
    emu.customer_text(kf, user, "怎么退货？", wait=True)
    emu.wait_for_sends(3, timeout=15, user=user)
    assert channel.wait_idle(10)
    assert bot.parts_seen_before_the_end == 0 and [s.text for s in emu.sends_to(user)] == _expected()


class ChangedMindBot(StreamingBot):
    """Streams the long answer, then replies with something else (a moderation rewrite)."""

    def reply(self, query: str, context: Context | None = None) -> Reply:
        super().reply(query, context)
        return Reply(ReplyType.TEXT, "抱歉，这个问题请咨询人工客服。")


def test_a_final_reply_unlike_the_stream_is_sent_after_the_early_parts_never_instead(emu, runner):
    kf, user = emu.default_kfid, emu.add_customer("改口")
    bot = ChangedMindBot(emu, user)
    channel = runner.start(bot=bot)
    emu.customer_text(kf, user, "怎么退货？", wait=True)
    emu.wait_for_sends(3, timeout=10, user=user)
    assert channel.wait_idle(10)
    sent = [s.text for s in emu.sends_to(user)]
    early = _expected()[:2]
    assert sent == [*early, "抱歉，这个问题请咨询人工客服。"]  # nothing sent twice, within the budget
