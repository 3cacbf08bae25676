"""Deliveries: the gate, budgeted sends, plans, retries until sent, finishing — against the emulator
over real HTTP, with the real JSON store, keyed workers, takeover and budget ledger."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge.reply import Reply, ReplyType
from channel.wechatcom_kf.api import KfApi
from channel.wechatcom_kf.inbound.inflight import InFlight
from channel.wechatcom_kf.inbound.items import CustomerMessage, parse_item
from channel.wechatcom_kf.inbound.turns import Turn
from channel.wechatcom_kf.outbound.deliveries import SEND_WINDOW_SECONDS, Deliveries
from channel.wechatcom_kf.outbound.delivery import Delivery
from channel.wechatcom_kf.outbound.msgid import make_msgid
from channel.wechatcom_kf.outbound.planner import OutboundLimits
from channel.wechatcom_kf.outbound.plans import plan_key
from channel.wechatcom_kf.retry import RetryPolicy
from channel.wechatcom_kf.session.budget import BudgetLedger
from channel.wechatcom_kf.session.recalls import Recalls
from channel.wechatcom_kf.session.takeover import Takeover
from channel.wechatcom_kf.store import JsonFileStore
from channel.wechatcom_kf.wechatcom_kf_message import WechatComKfMessage
from channel.wechatcom_kf.workers import KeyedWorkers
from sandbox.emulator import WeComEmulator

OWNER = "test-instance"
FAST = RetryPolicy(base=0.02, cap=0.05)
PARAGRAPH = "这一段用来检验分段发送。" * 50  # 1,800 bytes: one part each


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        import time

        return time.time() + self.offset


@dataclass
class Parts:
    emu: WeComEmulator
    api: KfApi
    store: JsonFileStore
    inflight: InFlight
    takeover: Takeover
    recalls: Recalls
    ledger: BudgetLedger
    workers: KeyedWorkers
    deliveries: Deliveries
    clock: Clock
    media: Path

    def turn(self, user: str, *texts: str) -> Turn:
        """The customer's messages pulled, accepted and in flight, as one turn."""
        kf = self.emu.default_kfid
        msgids = [self.emu.customer_text(kf, user, text, notify=False) for text in texts]
        raws = [m for m in self.emu.messages(kf) if m["msgid"] in msgids]
        self.store.accept_page(kf, None, raws, owner=OWNER)
        messages = []
        for raw in raws:
            item = parse_item(raw, kf)
            assert isinstance(item, CustomerMessage)
            assert self.inflight.take(kf, item.msgid)
            message = WechatComKfMessage(item, self.api, self.media)
            self.ledger.note_message(item.key, item.msgid, float(message.create_time))
            messages.append(message)
        return Turn((kf, user), messages)

    def finished(self, turn: Turn) -> bool:
        pending = {raw["msgid"] for raw in self.store.pending(self.emu.default_kfid)}
        return not pending & set(turn.msgids) and self.inflight.count() == 0


@pytest.fixture
def parts(emu: WeComEmulator, tmp_path: Path) -> Iterator[Parts]:
    api = KfApi(emu.corp_id, emu.secret, api_base=emu.api_base, timeout=5.0)
    store = JsonFileStore(tmp_path / "state")
    inflight = InFlight(store, OWNER, 60.0)
    takeover = Takeover(store, api)
    recalls, ledger = Recalls(), BudgetLedger()
    workers = KeyedWorkers("test-customer", 2)
    clock = Clock()
    deliveries = Deliveries(
        api=api,
        store=store,
        inflight=inflight,
        takeover=takeover,
        recalls=recalls,
        ledger=ledger,
        workers=workers,
        http_timeout=5.0,
        policy=FAST,
        clock=clock,
    )
    yield Parts(
        emu, api, store, inflight, takeover, recalls, ledger, workers, deliveries, clock, tmp_path / "m"
    )
    workers.shutdown(5)
    store.close()
    api.close()


def open_turn(parts: Parts, turn: Turn, recovered: bool = False) -> Delivery | None:
    return parts.deliveries.open(
        turn.key, turn.msgids, latest_message_time=turn.latest_message_time, recovered=recovered
    )


def answer(turn: Turn, parts: Parts, reply: Reply) -> Delivery:
    delivery = open_turn(parts, turn)
    assert delivery is not None
    delivery.send(reply)
    delivery.close()
    return delivery


def test_a_three_part_reply_is_sent_in_order_and_the_turn_finished(parts: Parts):
    user = parts.emu.add_customer()
    turn = parts.turn(user, "退货流程？")
    answer(turn, parts, Reply(ReplyType.TEXT, "\n\n".join([PARAGRAPH] * 3)))
    sends = parts.emu.sends_to(user)
    assert [s.msgid for s in sends] == [make_msgid(turn.msgids[-1], i) for i in range(3)]
    assert parts.finished(turn)
    assert parts.store.get_value(plan_key(turn.msgids[-1])) is None  # dropped after the finish


def test_a_recalled_turn_is_finished_without_a_send(parts: Parts):
    user = parts.emu.add_customer()
    turn = parts.turn(user, "说错了")
    parts.recalls.add(turn.msgids[0])
    assert open_turn(parts, turn) is None
    assert parts.finished(turn)
    assert parts.emu.sends_to(user) == []


def test_a_session_a_human_owns_is_finished_without_a_send(parts: Parts):
    user = parts.emu.add_customer()
    turn = parts.turn(user, "找人工")
    parts.emu.take_over(parts.emu.default_kfid, user, notify=False)
    parts.takeover.mark_human(parts.emu.default_kfid, user, "test")
    assert open_turn(parts, turn) is None
    assert parts.finished(turn)
    assert parts.emu.sends_to(user) == []


def test_a_reply_during_an_outage_is_kept_and_sent_once_wecom_is_back(parts: Parts):
    user = parts.emu.add_customer()
    turn = parts.turn(user, "在吗")
    delivery = open_turn(parts, turn)
    assert delivery is not None
    parts.emu.faults.error_5xx_rate = 1.0
    delivery.send(Reply(ReplyType.TEXT, "\n\n".join([PARAGRAPH] * 2)))
    delivery.close()
    assert not parts.finished(turn)  # not finished without a send
    assert parts.workers.busy()  # a retry is waiting
    parts.emu.faults.error_5xx_rate = 0.0
    parts.emu.wait_for_sends(2, timeout=10, user=user)
    assert parts.workers.wait_idle(10)
    assert parts.finished(turn)
    assert [s.msgid for s in parts.emu.sends_to(user)] == [make_msgid(turn.msgids[-1], i) for i in range(2)]
    assert parts.ledger.allowance_for(turn.key, []) == 3  # two sends counted, once each


def test_replies_queued_behind_a_retry_keep_their_order(parts: Parts):
    user = parts.emu.add_customer()
    first, second = parts.turn(user, "第一问"), parts.turn(user, "第二问")
    parts.emu.faults.error_5xx_rate = 1.0
    answer(first, parts, Reply(ReplyType.TEXT, "答一"))
    parts.emu.faults.error_5xx_rate = 0.0  # WeCom is back before the first reply's retry is due
    answer(second, parts, Reply(ReplyType.TEXT, "答二"))
    parts.emu.wait_for_sends(2, timeout=10, user=user)
    assert parts.workers.wait_idle(10)
    assert [s.text for s in parts.emu.sends_to(user)] == ["答一", "答二"]
    assert parts.finished(first) and parts.finished(second)


def test_95018_marks_the_customer_human_owned_and_is_not_retried(parts: Parts):
    user = parts.emu.add_customer()
    turn = parts.turn(user, "问题")
    delivery = open_turn(parts, turn)
    assert delivery is not None
    parts.emu.take_over(parts.emu.default_kfid, user, notify=False)
    delivery.send(Reply(ReplyType.TEXT, "答"))
    delivery.close()
    assert parts.finished(turn) and not parts.workers.busy()
    assert parts.takeover.is_flagged(parts.emu.default_kfid, user)
    assert [r.errcode for r in parts.emu.rejections if r.api.endswith("send_msg")] == [95018]


def test_a_40058_for_a_too_long_text_is_a_failure_not_a_delivery(parts: Parts, caplog):
    user = parts.emu.add_customer()
    turn = parts.turn(user, "问题")
    caplog.set_level(logging.INFO)
    parts.deliveries.limits = OutboundLimits(text_bytes=4096)  # a planner bug: parts over the limit
    answer(turn, parts, Reply(ReplyType.TEXT, "字" * 1000))  # 3,000 bytes: over WeCom's 2,048
    assert parts.emu.sends_to(user) == []
    assert [r.errcode for r in parts.emu.rejections if r.api.endswith("send_msg")] == [40058]
    assert parts.finished(turn) and not parts.workers.busy()  # not retried: it cannot succeed
    assert parts.ledger.allowance_for(turn.key, []) == 5  # nothing charged: nothing was delivered
    assert "refused (errcode 40058" in caplog.text and "already sent" not in caplog.text


def test_no_retry_once_the_48_hour_window_has_closed(parts: Parts, caplog):
    user = parts.emu.add_customer()
    turn = parts.turn(user, "很久以前的问题")
    parts.clock.offset = SEND_WINDOW_SECONDS + 60
    parts.emu.faults.error_5xx_rate = 1.0
    answer(turn, parts, Reply(ReplyType.TEXT, "答"))
    assert parts.finished(turn) and not parts.workers.busy()
    assert "48 h send window has closed" in caplog.text


def test_a_saved_plan_sends_only_the_parts_never_accepted(parts: Parts):
    user = parts.emu.add_customer()
    turn = parts.turn(user, "详细说说")
    base = turn.msgids[-1]
    texts = [f"第{i}段。" + PARAGRAPH[:100] for i in range(3)]
    plan = json.dumps({"parts": texts, "accepted": [0]}, ensure_ascii=False)
    parts.store.set_value(plan_key(base), plan, 3600)  # what a crash after part 0 leaves
    fresh = open_turn(parts, turn)  # a freshly pulled turn cannot have a plan: not even looked up
    assert fresh is not None and fresh.saved_plan is None
    delivery = open_turn(parts, turn, recovered=True)  # claimed back after the crash
    assert delivery is not None and delivery.saved_plan is not None
    delivery.resume()
    assert [s.text for s in parts.emu.sends_to(user)] == texts[1:]
    assert [s.msgid for s in parts.emu.sends_to(user)] == [make_msgid(base, 1), make_msgid(base, 2)]
    assert parts.finished(turn)
    assert parts.store.get_value(plan_key(base)) is None


def test_a_second_reply_of_one_turn_gets_its_own_msgids(parts: Parts):
    user = parts.emu.add_customer()
    turn = parts.turn(user, "图文")
    delivery = open_turn(parts, turn)
    assert delivery is not None
    delivery.send(Reply(ReplyType.TEXT, "文字"))
    delivery.send(Reply(ReplyType.TEXT, "补充"))
    delivery.close()
    base = turn.msgids[-1]
    assert [s.msgid for s in parts.emu.sends_to(user)] == [make_msgid(base, 0), make_msgid(f"{base}/1", 0)]
    assert parts.finished(turn)
