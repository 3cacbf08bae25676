"""Invariants 3 and 9 under WeCom faults: expiring tokens, a 45009 burst and 10% HTTP 5xx."""

from __future__ import annotations

import time

from bridge.reply import Reply, ReplyType
from tests.e2e.e2e_helpers import answers_per_message


def test_100_messages_are_answered_once_despite_faults(emu, runner):
    channel = runner.start()
    kf = emu.default_kfid
    emu.faults.seed(1234)
    emu.faults.invalidate_tokens_every = 1.0
    emu.faults.error_5xx_rate = 0.1
    users = [emu.add_customer(f"客户{i}") for i in range(50)]
    inbound: list[str] = []
    # Ten batches paced over a few seconds, so the faults hit pulls and sends alike. The 45009 burst is
    # as long as the pull's backoff can absorb within the wait below even if every refusal lands on
    # kf/sync_msg (up to 0.5 + 1 + ... + 16 s); fewer other calls (lookups share one) may take a share.
    for batch in range(10):
        if batch == 3:
            emu.faults.rate_limit_next(6)
        group = users[(batch % 5) * 10 : (batch % 5) * 10 + 10]
        inbound += [emu.customer_text(kf, user, f"问题{batch // 5}", notify=False) for user in group]
        assert emu.fire_callback(kf) == 200
        time.sleep(0.4)
    emu.wait_for_sends(100, timeout=120)
    assert channel.wait_idle(30)
    counts = answers_per_message(emu, inbound)
    assert [m for m, n in counts.items() if n != 1] == []
    assert len(emu.sends) == 100
    log = emu.protocol_log()
    errcodes = {e.get("errcode") for e in log if e.get("kind") == "api"}
    assert 45009 in errcodes, "the burst happened"
    assert errcodes & {40014, 42001}, "tokens were invalidated"
    assert any(e.get("status") == 500 for e in log), "5xx answers happened"
    assert not {r.errcode for r in emu.rejections} & {95001, 95002, 95018}
    for user in users:  # per-customer order survives the retries
        assert [s.text for s in emu.sends_to(user)] == ["你说：问题0", "你说：问题1"]


class RateLimitingBot:
    """Answers, and makes the emulator refuse the next ``burst`` API calls (the send) with 45009."""

    def __init__(self, emu, burst: int) -> None:
        self.emu, self.burst = emu, burst

    def reply(self, query: str, context=None) -> Reply:
        self.emu.faults.rate_limit_next(self.burst)
        return Reply(ReplyType.TEXT, f"答：{query}")


def test_a_send_interrupted_by_a_long_45009_burst_is_resent_once(emu, runner):
    channel = runner.start(bot=RateLimitingBot(emu, burst=7))
    user = emu.add_customer("限频")
    msgid = emu.customer_text(emu.default_kfid, user, "在吗")
    emu.wait_for_sends(1, timeout=60)
    assert channel.wait_idle(30)
    assert [s.text for s in emu.sends_to(user)] == ["答：在吗"]
    assert answers_per_message(emu, [msgid]) == {msgid: 1}
    assert [r.errcode for r in emu.rejections].count(45009) == 7
