"""What an operator reads in the log at INFO, end to end through the emulator: one line per finished
turn (account, the customer's id shortened, msgids, parts accepted, latency, outcome), one line per
hand-off and per takeover, and never the customer's full id or the message's content."""

from __future__ import annotations

import logging
import re

import pytest

from bridge.reply import Reply, ReplyType
from channel.wechatcom_kf.logids import short_user
from sandbox.harness import wait_until

TURN_LINE = re.compile(
    r"turn finished: account=(\S+) customer=(\S+) msgids=(\S+) parts=(\d+) latency=(\S+) outcome=(\S+)$"
)


class LongAnswerBot:
    """Answers with ``paragraphs`` paragraphs of 1,500 bytes each: one part per paragraph."""

    def __init__(self, paragraphs: int = 1) -> None:
        self.paragraphs = paragraphs
        self.calls = 0

    def reply(self, query, context=None):
        self.calls += 1
        return Reply(ReplyType.TEXT, "\n\n".join("答" * 500 for _ in range(self.paragraphs)))


def _info_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]


def _turn_lines(caplog: pytest.LogCaptureFixture) -> list[re.Match[str]]:
    return [m for line in _info_lines(caplog) if (m := TURN_LINE.search(line))]


def test_each_answered_turn_is_one_info_line_without_the_full_id_or_the_content(emu, runner, caplog):
    caplog.set_level(logging.INFO)
    kf, bot = emu.default_kfid, LongAnswerBot(paragraphs=2)
    channel = runner.start(bot=bot)
    first, second = emu.add_customer("甲"), emu.add_customer("乙")
    m1 = emu.customer_text(kf, first, "我的订单号是 A1234567", wait=True)
    m2 = emu.customer_text(kf, second, "发票怎么开", wait=True)
    emu.wait_for_sends(4, timeout=10)
    assert channel.wait_idle(10)
    # The line is written just after the turn is finished in the store (what wait_idle waits for).
    assert wait_until(lambda: len(_turn_lines(caplog)) >= 2, 5)

    turns = _turn_lines(caplog)
    assert len(turns) == 2 == bot.calls
    by_msgid = {t.group(3): t for t in turns}
    for msgid, user in ((m1, first), (m2, second)):
        line = by_msgid[msgid]
        assert line.group(1) == kf and line.group(2) == short_user(user) != user
        assert line.group(4) == "2" and line.group(6) == "answered"
        assert re.fullmatch(r"\d+\.\ds", line.group(5))
    text = "\n".join(_info_lines(caplog))
    for secret in (first, second, "A1234567", "发票怎么开", "答答答"):
        assert secret not in text  # neither the full customer id nor any content at INFO


def test_a_hand_off_and_a_takeover_each_get_their_line_and_the_turn_says_how_it_ended(emu, runner, caplog):
    caplog.set_level(logging.INFO)
    kf, bot = emu.default_kfid, LongAnswerBot()
    channel = runner.start(bot=bot)
    asks, taken = emu.add_customer("要人工"), emu.add_customer("被接待")
    emu.customer_text(kf, asks, "转人工", wait=True)
    emu.wait_for_sends(1, timeout=10, user=asks)
    emu.take_over(kf, taken, "zhangsan", wait=True)
    emu.customer_text(kf, taken, "你好", wait=True)
    assert channel.wait_idle(10)
    assert wait_until(lambda: len(_turn_lines(caplog)) >= 2, 5)

    outcomes = {t.group(2): t.group(6) for t in _turn_lines(caplog)}
    assert outcomes == {short_user(asks): "handed_off", short_user(taken): "human"}
    assert bot.calls == 0
    lines = _info_lines(caplog)
    assert sum(f"handed {kf}/{short_user(asks)} off to receptionist zhangsan" in line for line in lines) == 1
    assert any(f"human owns {kf}/{short_user(taken)}" in line for line in lines)
