"""Several instances on one real Redis (``wechatcom_kf_redis_url``): callbacks spread over two channels,
claims that keep a live instance's work its own, and takeover of a dead instance's work once its
lease expires. Each message is answered exactly once and the bot is asked once per message."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any

from bridge.reply import Reply, ReplyType
from channel.wechatcom_kf.api import KfApi
from channel.wechatcom_kf.store import RedisStore
from channel.wechatcom_kf.wechatcom_kf_channel import WechatComKfChannel
from tests.e2e.e2e_helpers import answers_per_message

LEASE = 1.5  # short claims: renewed every 0.5 s, swept every 0.75 s


class ShortLeaseChannel(WechatComKfChannel):
    claim_lease_seconds = LEASE


class EagerSweeperChannel(WechatComKfChannel):
    """Sweeps for expired claims every 0.15 s: it would take over any claim the other instance lets lapse."""

    claim_lease_seconds = 0.3


class RecordingBot:
    """Counts the inbound msgids each bot call answers; optionally holds every call until ``gate``."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: Counter[str] = Counter()
        self.gate = gate
        self._lock = threading.Lock()

    def reply(self, query: str, context: Any = None) -> Reply:
        msgids = list((context.get("kf_msgids") if context is not None else None) or [])
        with self._lock:
            self.calls.update(str(m) for m in msgids)
        if self.gate is not None:
            assert self.gate.wait(30)
        return Reply(ReplyType.TEXT, f"答：{query}")

    def total(self) -> int:
        with self._lock:
            return sum(self.calls.values())


def _shared(redis_url: str) -> dict[str, str]:
    """Settings of one deployment: every instance of a test uses the same Redis URL and prefix."""
    return {"wechatcom_kf_redis_url": redis_url, "wechatcom_kf_redis_prefix": f"t{uuid.uuid4().hex[:8]}:"}


def _wait_for(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # bounded poll
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def test_hundred_customers_over_two_instances_are_answered_once(emu, runner, redis_url):
    bot = RecordingBot()
    shared = _shared(redis_url)
    first = runner.start(ShortLeaseChannel, bot=bot, **shared)
    second = runner.start(ShortLeaseChannel, bot=bot, **shared)
    assert first.kf_settings.wechatcom_kf_redis_url == redis_url
    urls = [f"http://127.0.0.1:{c.port}/wxkf/" for c in (first, second)]
    kf = emu.default_kfid
    users = [emu.add_customer(f"客户{i}") for i in range(100)]
    inbound: list[str] = []
    for batch in range(10):  # a load balancer spreads the callbacks of each burst over both instances
        for user in users[batch * 10 : (batch + 1) * 10]:
            inbound.append(emu.customer_text(kf, user, f"问题{batch}", notify=False))
        for url in urls:
            assert emu.fire_callback(kf, url=url) == 200
    emu.wait_for_sends(100, timeout=60)
    assert first.wait_idle(30) and second.wait_idle(30)
    counts = answers_per_message(emu, inbound)
    assert [m for m, n in counts.items() if n != 1] == []
    assert len(emu.sends) == 100
    assert {m: bot.calls[m] for m in inbound} == dict.fromkeys(inbound, 1)
    assert bot.total() == 100
    # Both instances received callbacks; what one could not pull itself it handed to the lock holder.
    assert first.kf.puller.schedules > 0 and second.kf.puller.schedules > 0


def test_a_live_instances_slow_turns_are_not_taken_over(emu, runner, redis_url):
    gate = threading.Event()
    bot = RecordingBot(gate)
    shared = _shared(redis_url)
    first = runner.start(ShortLeaseChannel, bot=bot, **shared)
    second = runner.start(EagerSweeperChannel, bot=bot, **shared)
    kf = emu.default_kfid
    users = [emu.add_customer(f"慢{i}") for i in range(5)]
    inbound = [emu.customer_text(kf, user, "慢问题", notify=False) for user in users]
    assert emu.fire_callback(kf, url=f"http://127.0.0.1:{first.port}/wxkf/") == 200
    assert _wait_for(lambda: bot.total() == 5, 20)
    # The bot is busy for several leases: the first instance renews its claims, the second sweeps often.
    time.sleep(LEASE * 3)
    assert bot.total() == 5
    gate.set()
    emu.wait_for_sends(5, timeout=30)
    assert first.wait_idle(30) and second.wait_idle(30)
    assert answers_per_message(emu, inbound) == dict.fromkeys(inbound, 1)
    assert {m: bot.calls[m] for m in inbound} == dict.fromkeys(inbound, 1)
    assert second.kf.inflight.count() == 0


def test_a_dead_instances_accepted_messages_are_taken_over_after_its_lease(emu, runner, redis_url):
    shared = _shared(redis_url)
    kf = emu.default_kfid
    users = [emu.add_customer(f"遗留{i}") for i in range(10)]
    inbound = [emu.customer_text(kf, user, "没回的问题", notify=False) for user in users]
    # The dead instance pulled and accepted the page (claims with a lease), then died before answering.
    api = KfApi(emu.corp_id, emu.secret, api_base=emu.api_base, timeout=5.0)
    store = RedisStore(shared["wechatcom_kf_redis_url"], prefix=shared["wechatcom_kf_redis_prefix"])
    try:
        page = api.sync_msg(kf, None, None)
        accepted = store.accept_page(
            kf, page.next_cursor, page.msg_list, owner="dead-instance", lease_seconds=1.0
        )
        assert [i["msgid"] for i in accepted] == inbound
    finally:
        api.close()
        store.close()
    bot = RecordingBot()
    survivor = runner.start(ShortLeaseChannel, bot=bot, **shared)
    # No callback: the survivor's start-up recovery or its sweep claims the items once the lease ends.
    emu.wait_for_sends(10, timeout=30)
    assert survivor.wait_idle(30)
    assert answers_per_message(emu, inbound) == dict.fromkeys(inbound, 1)
    assert {m: bot.calls[m] for m in inbound} == dict.fromkeys(inbound, 1)
    assert survivor.kf.puller.pulls_started == 1  # the one pull of every known account at start


def test_a_restarted_instance_answers_unfinished_messages_without_a_callback(emu, runner, redis_url):
    shared = _shared(redis_url)
    kf = emu.default_kfid
    user = emu.add_customer("重启")
    msgid = emu.customer_text(kf, user, "重启前的问题", notify=False)
    api = KfApi(emu.corp_id, emu.secret, api_base=emu.api_base, timeout=5.0)
    store = RedisStore(shared["wechatcom_kf_redis_url"], prefix=shared["wechatcom_kf_redis_prefix"])
    try:  # accepted without an owner: what a previous run of a single instance leaves behind
        page = api.sync_msg(kf, None, None)
        assert store.accept_page(kf, page.next_cursor, page.msg_list) != []
    finally:
        api.close()
        store.close()
    bot = RecordingBot()
    channel = runner.start(bot=bot, **shared)
    emu.wait_for_sends(1, timeout=20)
    assert channel.wait_idle(20)
    assert answers_per_message(emu, [msgid]) == {msgid: 1}
    assert bot.calls[msgid] == 1
    assert channel.kf.puller.pulls_started == 1  # the one pull of every known account at start


def test_several_messages_per_customer_over_two_instances_are_answered_once(emu, runner, redis_url):
    shared = _shared(redis_url)
    first = runner.start(ShortLeaseChannel, **shared)
    second = runner.start(ShortLeaseChannel, **shared)
    urls = [f"http://127.0.0.1:{c.port}/wxkf/" for c in (first, second)]
    kf = emu.default_kfid
    users = [emu.add_customer(f"客户{i}") for i in range(20)]
    inbound: list[str] = []
    for round_no in range(3):
        inbound += [emu.customer_text(kf, user, f"问题{round_no}", notify=False) for user in users]
        for url in urls:  # WeCom may deliver to either instance behind a load balancer
            assert emu.fire_callback(kf, url=url) == 200
    emu.wait_for_sends(60, timeout=60)
    assert first.wait_idle(20) and second.wait_idle(20)
    counts = answers_per_message(emu, inbound)
    assert [m for m, n in counts.items() if n != 1] == []
    assert len(emu.sends) == 60
