"""Invariants 2 and 3 under load: many customers behind one callback, repeated callbacks."""

from __future__ import annotations

import concurrent.futures

from tests.e2e.e2e_helpers import answers_per_message


def test_200_customers_behind_one_callback_get_one_reply_each(emu, runner):
    channel = runner.start()
    kf = emu.default_kfid
    users = [emu.add_customer(f"客户{i}") for i in range(200)]
    msgids = {emu.customer_text(kf, user, f"问题{i}", notify=False): user for i, user in enumerate(users)}
    assert emu.fire_callback(kf) == 200
    emu.wait_for_sends(200, timeout=60)
    assert channel.wait_idle(20)
    counts = answers_per_message(emu, msgids)
    assert [m for m, n in counts.items() if n == 0] == [], "every message answered"
    assert [m for m, n in counts.items() if n > 1] == [], "no duplicates"
    assert sorted(s.touser for s in emu.sends) == sorted(users)
    print(f"\nFIGURES test2a: messages=200 replies={len(emu.sends)} duplicates=0 losses=0")


def test_three_messages_per_customer_are_answered_in_order(emu, runner):
    channel = runner.start()
    kf = emu.default_kfid
    users = [emu.add_customer(f"客户{i}") for i in range(20)]
    for round_no in range(3):
        for i, user in enumerate(users):
            emu.customer_text(kf, user, f"{i}-{round_no}", notify=False)
    assert emu.fire_callback(kf) == 200
    emu.wait_for_sends(60, timeout=60)
    assert channel.wait_idle(20)
    for i, user in enumerate(users):
        texts = [s.text for s in emu.sends_to(user)]
        assert texts == [f"你说：{i}-{r}" for r in range(3)]
    assert len(emu.sends) == 60
    assert not [r for r in emu.rejections if r.api.endswith("send_msg")]
    print(f"\nFIGURES test2b: messages=60 replies={len(emu.sends)} order kept for 20 customers")


def test_the_same_callback_three_times_concurrently_gives_exactly_one_reply_each(emu, runner):
    channel = runner.start()
    kf = emu.default_kfid
    users = [emu.add_customer(f"客户{i}") for i in range(20)]
    msgids = [emu.customer_text(kf, user, "你好", notify=False) for user in users]
    params, body = emu.encrypt_callback(kf)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        statuses = list(pool.map(lambda _: emu.post_callback_raw(body, params)[0], range(3)))
    assert statuses == [200, 200, 200]
    emu.wait_for_sends(20, timeout=30)
    assert channel.wait_idle(20)
    assert answers_per_message(emu, msgids) == dict.fromkeys(msgids, 1)
    assert len(emu.sends) == 20
    # Three callbacks during or before one pull coalesce: never more than one extra pull.
    assert 1 <= channel.kf.puller.pulls_started <= 2
    print(
        f"\nFIGURES test3: messages=20 callbacks=3 replies={len(emu.sends)} "
        f"pulls={channel.kf.puller.pulls_started}"
    )


def test_two_accounts_keep_their_customers_apart(emu, runner):
    channel = runner.start()
    kf_a, kf_b = emu.default_kfid, emu.add_account("售后")
    user = emu.add_customer("两边都问")
    emu.customer_text(kf_a, user, "售前问题", notify=False)
    emu.customer_text(kf_b, user, "售后问题", notify=False)
    assert emu.fire_callback(kf_b) == 200  # only B is announced: only B is pulled
    emu.wait_for_sends(1, timeout=15)
    assert channel.wait_idle(15)
    assert [(s.open_kfid, s.text) for s in emu.sends] == [(kf_b, "你说：售后问题")]
    assert emu.fire_callback(kf_a) == 200
    emu.wait_for_sends(2, timeout=15)
    assert channel.wait_idle(15)
    assert sorted((s.open_kfid, s.text) for s in emu.sends) == sorted(
        [(kf_a, "你说：售前问题"), (kf_b, "你说：售后问题")]
    )
