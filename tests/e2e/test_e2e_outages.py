"""Outages of what the channel depends on, over real HTTP and a real Redis:

- WeCom's API failing for 60 s after the messages were pulled: every reply goes out once it is back;
- the app killed with a slow ``sync_msg`` in flight: the restart pulls without waiting for a callback;
- Redis killed for 8 s mid-burst: everything answered once within seconds of its return, the outage
  logged once rather than once per message.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.reply import Reply, ReplyType
from sandbox.emulator import WeComEmulator
from sandbox.fake_openai import FakeOpenAIServer
from sandbox.harness import wait_until
from tests.e2e.e2e_helpers import (
    ChannelRunner,
    answers_per_message,
    app_with_fake_llm,
    pending_left,
    start_app,
)
from tests.redis_helpers import RedisServer

OUTAGE_SECONDS = 60.0
REDIS_DOWN_SECONDS = 8.0


class GatedBot:
    """Counts the calls per inbound msgid; every call waits for ``gate`` (set it to let them answer)."""

    def __init__(self, gate: threading.Event | None = None, latency: float = 0.0) -> None:
        self.calls: Counter[str] = Counter()
        self.gate = gate
        self.latency = latency
        self._lock = threading.Lock()

    def reply(self, query: str, context: Any = None) -> Reply:
        with self._lock:
            self.calls.update(str(m) for m in (context.get("kf_msgids") or []))
        if self.gate is not None:
            assert self.gate.wait(60)
        if self.latency:
            threading.Event().wait(self.latency)
        return Reply(ReplyType.TEXT, f"答：{query}")

    def total(self) -> int:
        with self._lock:
            return sum(self.calls.values())


def test_replies_due_during_a_60_second_api_outage_go_out_once_it_is_back(emu: WeComEmulator, runner):
    gate = threading.Event()
    bot = GatedBot(gate)
    channel = runner.start(bot=bot)
    kf = emu.default_kfid
    users = [emu.add_customer(f"停机{i}") for i in range(30)]
    inbound = [emu.customer_text(kf, user, "在吗？", notify=False) for user in users]
    assert emu.fire_callback(kf) == 200
    assert wait_until(lambda: bot.total() == 30, 20)  # pulled, accepted and with the bot
    # Every API call fails from now on: dropped connections and HTTP 500s.
    emu.faults.drop_rate, emu.faults.error_5xx_rate = 0.3, 1.0
    gate.set()
    assert not emu.wait_until(lambda: len(emu.state.sends) > 0, OUTAGE_SECONDS)
    assert not channel.wait_idle(0.1)  # nothing finished without a send
    emu.faults.reset()
    emu.wait_for_sends(30, timeout=45)  # no new callback: the channel retries by itself
    assert channel.wait_idle(20)
    assert answers_per_message(emu, inbound) == dict.fromkeys(inbound, 1)
    assert {m: bot.calls[m] for m in inbound} == dict.fromkeys(inbound, 1)  # the bot is not asked again
    assert len(emu.sends) == 30


def test_a_restart_after_kill_9_during_a_slow_pull_answers_without_another_callback(
    emu: WeComEmulator, tmp_path: Path, fake_llm: FakeOpenAIServer
):
    app = app_with_fake_llm(emu, tmp_path, fake_llm.base_url)
    kf = emu.default_kfid
    start_app(app)
    try:
        first = emu.add_customer("第一位")
        warmup = emu.customer_text(kf, first, "你好", wait=True)
        emu.wait_for_sends(1, timeout=20)  # the account now has a cursor
        emu.faults.latency = {"kf/sync_msg": 2.0}
        users = [emu.add_customer(f"客户{i}") for i in range(200)]
        inbound = [emu.customer_text(kf, user, "问题", notify=False) for user in users]
        futures = [emu.fire_callback(kf, wait=False) for _ in range(20)]
        assert all(future.result(timeout=30) == 200 for future in futures)  # type: ignore[union-attr]
        app.kill()  # a sync_msg is still in flight; WeCom will not repeat the callbacks it got 200 for
        emu.faults.latency = {}
        start_app(app)
        emu.wait_for_sends(201, timeout=60)  # no callback after the restart
        assert answers_per_message(emu, [warmup, *inbound]) == dict.fromkeys([warmup, *inbound], 1)
    finally:
        code = app.stop()
    assert code == 0
    assert pending_left(app.state_dir) == {}
    assert "Traceback" not in app.log_text()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    workdir = tmp_path / "redis"
    workdir.mkdir()
    # Durable, so that a kill -9 loses nothing the channel was told is written.
    server = RedisServer(workdir, ("--appendonly", "yes", "--appendfsync", "always"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_an_8_second_redis_outage_mid_burst_delays_answers_by_seconds_only(
    emu: WeComEmulator, runner: ChannelRunner, own_redis: RedisServer, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    bot = GatedBot(latency=0.05)
    shared = {
        "wechatcom_kf_redis_url": own_redis.url,
        "wechatcom_kf_redis_prefix": f"t{uuid.uuid4().hex[:8]}:",
    }
    channel = runner.start(bot=bot, **shared)
    kf = emu.default_kfid
    users = [emu.add_customer(f"缓存{i}") for i in range(120)]
    inbound = [emu.customer_text(kf, user, "问题", notify=False) for user in users]
    assert emu.fire_callback(kf) == 200
    emu.wait_for_sends(20, timeout=30)
    own_redis.kill()
    threading.Event().wait(REDIS_DOWN_SECONDS)
    own_redis.start()
    emu.wait_for_sends(120, timeout=20)  # seconds after its return, not after claim leases expire
    assert channel.wait_idle(20)
    assert answers_per_message(emu, inbound) == dict.fromkeys(inbound, 1)
    assert {m: bot.calls[m] for m in inbound} == dict.fromkeys(inbound, 1)
    outage = [r for r in caplog.records if "state store unavailable" in r.getMessage()]
    back = [r for r in caplog.records if "state store available again" in r.getMessage()]
    assert len(outage) == 1 and len(back) == 1
    assert [r for r in caplog.records if r.exc_info] == []  # no traceback for any message
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 0
