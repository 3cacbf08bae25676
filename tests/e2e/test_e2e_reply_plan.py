"""Invariant 3 for multi-part replies: a turn re-handled after a crash sends the parts of the answer it
started, never parts of a new one; single-part replies save no plan."""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from typing import Any

import pytest

from bridge.reply import Reply, ReplyType
from channel.wechatcom_kf.api import KfApi
from channel.wechatcom_kf.outbound.msgid import make_msgid
from channel.wechatcom_kf.store import JsonFileStore
from sandbox.fake_openai import FakeOpenAIServer
from tests.e2e.e2e_helpers import app_with_fake_llm, pending_left, refused_resends, start_app

PARAGRAPH_CHARS = 600  # ~1.8 KB of UTF-8 each: two paragraphs exceed a 2048-byte text part


def long_answer(version: int) -> str:
    """Three paragraphs, each naming the answer's ``version`` and its position: three text parts."""
    return "\n\n".join(f"第{version}版答案第{k}段：" + "好" * PARAGRAPH_CHARS for k in (1, 2, 3))


def parts_of(text: str) -> tuple[int, int]:
    """(version, paragraph) named at the start of a received part."""
    found = re.match(r"第(\d+)版答案第(\d)段：", text)
    assert found, text[:40]
    return int(found.group(1)), int(found.group(2))


class CountingBot:
    """Answers every query with ``answer`` and counts the calls."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.calls = 0

    def reply(self, query: str, context: Any = None) -> Reply:
        self.calls += 1
        return Reply(ReplyType.TEXT, self.answer)


def spy_values(channel: Any, emu: Any) -> list[tuple[str, Any, int]]:
    """Record every ``set_value`` of the channel's store as (key, value as JSON or None, sends so far)."""
    calls: list[tuple[str, Any, int]] = []
    real = channel.kf.store.set_value

    def set_value(key: str, value: str | None, ttl_seconds: float | None) -> None:
        calls.append((key, None if value is None else json.loads(value), len(emu.sends)))
        real(key, value, ttl_seconds)

    channel.kf.store.set_value = set_value
    return calls


def test_single_part_reply_saves_no_plan(emu, runner):
    channel = runner.start(bot=CountingBot("短答"))
    flags = spy_values(channel, emu)
    user = emu.add_customer("客户")
    msgid = emu.customer_text(emu.default_kfid, user, "你好")
    assert [s.text for s in emu.wait_for_sends(1, timeout=10)] == ["短答"]
    assert channel.wait_idle(10)
    assert [key for key, _, _ in flags if key.startswith("plan:")] == []
    assert channel.kf.store.get_value(f"plan:{msgid}") is None


def test_multi_part_plan_saved_before_first_part_and_dropped_after(emu, runner):
    channel = runner.start(bot=CountingBot(long_answer(1)))
    flags = spy_values(channel, emu)
    user = emu.add_customer("客户")
    msgid = emu.customer_text(emu.default_kfid, user, "详细说说")
    sends = emu.wait_for_sends(3, timeout=10)
    assert channel.wait_idle(10)
    assert [parts_of(s.text) for s in sends] == [(1, 1), (1, 2), (1, 3)]
    plan_calls = [(value and value["accepted"], sent) for key, value, sent in flags if key == f"plan:{msgid}"]
    # Saved before part 1, each accepted part recorded before the next is sent, dropped after the last.
    assert plan_calls == [([], 0), ([0], 1), ([0, 1], 2), (None, 3)]
    assert channel.kf.store.get_value(f"plan:{msgid}") is None


def test_saved_plan_is_resent_without_asking_the_bot(emu, runner):
    kf, user = emu.default_kfid, emu.add_customer("客户")
    msgid = emu.customer_text(kf, user, "详细说说", notify=False)
    saved = [long_answer(1).split("\n\n")[k] for k in range(3)]
    # The state a crash leaves: the message accepted and pending, the plan saved with part 0 accepted,
    # and part 0 delivered.
    api = KfApi(emu.corp_id, emu.secret, api_base=emu.api_base, timeout=5.0)
    store = JsonFileStore(runner.state_dir)
    try:
        page = api.sync_msg(kf, None, None)
        assert [i["msgid"] for i in store.accept_page(kf, page.next_cursor, page.msg_list)] == [msgid]
        plan = {"parts": saved, "accepted": [0]}
        store.set_value(f"plan:{msgid}", json.dumps(plan, ensure_ascii=False), 3600)
        api.send_msg(user, kf, "text", {"content": saved[0]}, make_msgid(msgid, 0))
    finally:
        store.close()
        api.close()
    bot = CountingBot(long_answer(2))
    channel = runner.start(bot=bot)  # claims the pending message at start: no callback needed
    sends = emu.wait_for_sends(3, timeout=10)
    assert channel.wait_idle(10)
    assert bot.calls == 0
    assert [s.text for s in sends] == saved
    assert [s.msgid for s in sends] == [make_msgid(msgid, i) for i in range(3)]
    assert refused_resends(emu) == 0  # part 0 was recorded as accepted: not even tried again
    assert channel.kf.store.get_value(f"plan:{msgid}") is None


@pytest.fixture
def versioned_llm():
    """A fake OpenAI server answering a different three-part answer on every call."""
    counter, lock = itertools.count(1), threading.Lock()

    def reply_fn(body: dict[str, Any]) -> str:
        with lock:
            return long_answer(next(counter))

    server = FakeOpenAIServer(reply_fn=reply_fn)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_sigkill_mid_reply_delivers_one_answer(emu, tmp_path, versioned_llm):
    app = app_with_fake_llm(emu, tmp_path, versioned_llm.base_url, wechatcom_kf_merge_window_seconds=0.2)
    kf, user = emu.default_kfid, emu.add_customer("客户")
    # Each send waits in the emulator first: the kill lands while part 2 is on its way.
    emu.faults.latency = {"kf/send_msg": 1.0}
    start_app(app)
    try:
        msgid = emu.customer_text(kf, user, "详细说说")
        emu.wait_for_sends(1, timeout=30)
        app.kill()
        emu.faults.latency = {}
        start_app(app)
        assert emu.fire_callback(kf) == 200
        sends = emu.wait_for_sends(3, timeout=30)
        time.sleep(1.5)  # a late part (of the killed run's in-flight send or a new answer) shows up here
    finally:
        code = app.stop()
    sends = [s for s in emu.sends if s.touser == user]
    assert sorted(s.msgid for s in sends) == sorted(make_msgid(msgid, i) for i in range(3))
    received = sorted(parts_of(s.text) for s in sends)
    versions = {version for version, _ in received}
    assert len(versions) == 1, f"parts of different answers: {received}"
    assert [k for _, k in received] == [1, 2, 3]
    # The saved plan said part 1 was accepted: only part 2 (in flight at the kill) and part 3 are
    # sent again, and the model is not asked a second time.
    assert versioned_llm.calls == 1
    assert refused_resends(emu) <= 1
    assert pending_left(app.state_dir) == {}
    assert code == 0
