"""Invariant 4: the first start is quiet but not deaf; after downtime recent messages are answered."""

from __future__ import annotations

import time

from tests.e2e.e2e_helpers import answers_per_message


def test_first_start_skips_history_and_answers_the_new_message(emu, runner):
    kf = emu.default_kfid
    users = [emu.add_customer(f"老客户{i}") for i in range(5)]
    now = time.time()
    # 50 messages from two days ago up to one hour ago, sent while the bot did not exist.
    ages = [2 * 86400 - i * (2 * 86400 - 3600) / 49 for i in range(50)]
    history = [
        emu.customer_text(kf, users[i % 5], f"旧消息{i}", send_time=now - age, notify=False)
        for i, age in enumerate(ages)
    ]
    channel = runner.start()
    newcomer = emu.add_customer("新客户")
    new = emu.customer_text(kf, newcomer, "现在的问题")  # fires the callback
    emu.wait_for_sends(1, timeout=15)
    assert channel.wait_idle(15)
    assert [(s.touser, s.text) for s in emu.sends] == [(newcomer, "你说：现在的问题")]
    assert answers_per_message(emu, history) == dict.fromkeys(history, 0)
    assert answers_per_message(emu, [new]) == {new: 1}
    # The skipped history is recorded as done: another callback answers nothing more.
    assert emu.fire_callback(kf) == 200
    assert channel.wait_idle(15)
    assert len(emu.sends) == 1


def test_after_downtime_messages_inside_the_window_are_answered(emu, runner):
    kf = emu.default_kfid
    user = emu.add_customer("回头客")
    channel = runner.start()
    emu.customer_text(kf, user, "第一次")
    emu.wait_for_sends(1, timeout=15)
    runner.stop(channel)
    # While the bot was down: one message 3 hours ago (inside 48 h) is answered after the restart.
    during = emu.customer_text(kf, user, "停机期间", send_time=time.time() - 3 * 3600, notify=False)
    channel = runner.start()
    emu.fire_callback(kf)
    emu.wait_for_sends(2, timeout=15)
    assert channel.wait_idle(15)
    assert [s.text for s in emu.sends] == ["你说：第一次", "你说：停机期间"]
    assert answers_per_message(emu, [during]) == {during: 1}


def test_after_downtime_messages_older_than_the_age_limit_are_skipped(emu, runner):
    kf = emu.default_kfid
    user = emu.add_customer("回头客")
    channel = runner.start(wechatcom_kf_max_message_age_hours=1.0)
    emu.customer_text(kf, user, "第一次")
    emu.wait_for_sends(1, timeout=15)
    runner.stop(channel)
    emu.customer_text(kf, user, "太旧了", send_time=time.time() - 2 * 3600, notify=False)
    channel = runner.start(wechatcom_kf_max_message_age_hours=1.0)
    emu.customer_text(kf, user, "最新的")
    emu.wait_for_sends(2, timeout=15)
    assert channel.wait_idle(15)
    assert [s.text for s in emu.sends] == ["你说：第一次", "你说：最新的"]
