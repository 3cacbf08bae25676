"""Router: each accepted item handed on exactly once, by what it is.

Everything behind the router is real (InFlight, Takeover, EventHandler, BudgetLedger, Recalls and a
TurnAssembler with merge window 0 on KeyedWorkers) on a JsonFileStore. Turns are captured by the
assembler's ``on_turn``, which finishes them as the delivery would; the welcome's API is a recording
fake of ``send_msg_on_event``. Items are accepted into the store first, as the puller does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from channel.wechatcom_kf.errors import KfApiError
from channel.wechatcom_kf.inbound.events import EventHandler, Welcome
from channel.wechatcom_kf.inbound.inflight import InFlight
from channel.wechatcom_kf.inbound.items import CustomerMessage, Item, parse_item
from channel.wechatcom_kf.inbound.router import Router
from channel.wechatcom_kf.inbound.turns import Turn, TurnAssembler
from channel.wechatcom_kf.outbound.msgid import welcome_msgid
from channel.wechatcom_kf.session.budget import BudgetLedger
from channel.wechatcom_kf.session.recalls import Recalls
from channel.wechatcom_kf.session.takeover import Takeover
from channel.wechatcom_kf.store import JsonFileStore, StoreUnavailable
from channel.wechatcom_kf.wechatcom_kf_message import WechatComKfMessage
from channel.wechatcom_kf.workers import KeyedWorkers

KF, USER, ME = "wkRT", "wmRT", "me"
WAIT = 10.0
ROUTER_LOGGER = "channel.wechatcom_kf.inbound.router"


def customer(
    msgid: str, text: str = "在吗", user: str = USER, send_time: int = 1_700_000_000
) -> dict[str, Any]:
    return {
        "msgid": msgid,
        "external_userid": user,
        "origin": 3,
        "send_time": send_time,
        "msgtype": "text",
        "text": {"content": text},
    }


def servicer(msgid: str) -> dict[str, Any]:
    return {
        "msgid": msgid,
        "external_userid": USER,
        "origin": 5,
        "msgtype": "text",
        "text": {"content": "人工"},
    }


def event(msgid: str, event_type: str, **fields: Any) -> dict[str, Any]:
    body = {"event_type": event_type, "external_userid": USER, **fields}
    return {"msgid": msgid, "origin": 4, "msgtype": "event", "event": body}


class RecordingApi:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.sent: list[tuple[str, str, dict[str, Any], str | None]] = []
        self.threads: list[str] = []
        self.error: Exception | None = None

    def send_msg_on_event(self, code: str, msgtype: str, body: dict[str, Any], msgid: str | None) -> str:
        self.sent.append((code, msgtype, body, msgid))
        self.threads.append(threading.current_thread().name)
        self.log.append(f"welcome {code}")
        if self.error is not None:
            raise self.error
        return msgid or ""


class NoStateApi:
    def get_service_state(self, open_kfid: str, external_userid: str) -> Any:
        raise AssertionError("the router never asks")

    def trans_service_state(self, *args: Any, **kwargs: Any) -> str | None:
        raise AssertionError("the router never asks")


class Rig:
    def __init__(
        self,
        store: Any,
        media_dir: Path,
        welcome: str = "",
        finish_turns: bool = True,
        make_message: Callable[[CustomerMessage], WechatComKfMessage] | None = None,
    ) -> None:
        self.store = store
        self.log: list[str] = []
        self.turns: list[Turn] = []
        self.finish_turns = finish_turns
        self.api = RecordingApi(self.log)
        self.inflight = InFlight(store, ME, 60.0)
        self.takeover = Takeover(store, NoStateApi())
        self.recalls = Recalls()
        self.ledger = BudgetLedger()
        self.customers = KeyedWorkers("test-customer", 4)
        self.router = Router(
            inflight=self.inflight,
            takeover=self.takeover,
            events=EventHandler(self.api, self.takeover, self.recalls, Welcome.configured(welcome, None)),
            ledger=self.ledger,
            turns=TurnAssembler(self.customers, 0.0, self._on_turn),
            customers=self.customers,
            make_message=make_message or (lambda item: WechatComKfMessage(item, None, media_dir)),
        )

    def _on_turn(self, turn: Turn) -> None:
        self.log.append("turn " + ",".join(turn.msgids))
        self.turns.append(turn)
        if self.finish_turns:
            self.inflight.finish(turn.key[0], turn.msgids)

    def accept(self, *raws: dict[str, Any]) -> list[Item]:
        accepted = self.store.accept_page(KF, None, list(raws), [], ME, 60.0)
        items = [parse_item(raw, KF) for raw in accepted]
        assert all(item is not None for item in items)
        return [item for item in items if item is not None]

    def route(self, *raws: dict[str, Any]) -> None:
        self.router.route(self.accept(*raws))
        self.settle()

    def settle(self) -> None:
        assert self.customers.wait_idle(WAIT)
        assert self.inflight.wait_idle(WAIT)

    def pending(self) -> list[str]:
        return [raw["msgid"] for raw in self.store.pending(KF)]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JsonFileStore]:
    s = JsonFileStore(tmp_path / "state")
    yield s
    s.close()


@pytest.fixture
def make_rig(store: JsonFileStore, tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    made: list[Rig] = []

    def make(**kw: Any) -> Rig:
        rig = Rig(kw.pop("store", store), tmp_path / "media", **kw)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.customers.shutdown(5)


def test_a_customer_message_becomes_a_turn_and_opens_its_budget(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.route(customer("m1", "你好", send_time=1_700_000_123))
    assert [(t.key, t.msgids) for t in rig.turns] == [((KF, USER), ["m1"])]
    message = rig.turns[0].last
    assert (message.content, message.open_kfid, message.external_userid) == ("你好", KF, USER)
    assert rig.ledger.latest_message_time((KF, USER)) == 1_700_000_123
    assert rig.pending() == []  # finished by the turn's end


def test_claimed_back_messages_are_marked_recovered_and_fresh_ones_not(make_rig: Callable[..., Rig]) -> None:
    """Only a recovered turn can have a half-sent reply whose saved plan is worth looking up."""
    rig = make_rig()
    rig.router.route(rig.accept(customer("old", user="wmA")), recovered=True)
    rig.route(customer("new", user="wmB"))
    rig.settle()
    assert {t.msgids[0]: t.recovered for t in rig.turns} == {"old": True, "new": False}


def test_messages_keep_their_order_per_customer(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    raws = [customer(f"a{n}", user="wmA") for n in range(5)] + [
        customer(f"b{n}", user="wmB") for n in range(5)
    ]
    rig.route(*raws)
    by_user: dict[str, list[str]] = {}
    for turn in rig.turns:
        by_user.setdefault(turn.key[1], []).extend(turn.msgids)
    assert by_user == {"wmA": [f"a{n}" for n in range(5)], "wmB": [f"b{n}" for n in range(5)]}


def test_an_item_in_flight_or_just_finished_is_not_routed_again(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(finish_turns=False)
    items = rig.accept(customer("m1"))
    rig.router.route(items)
    assert rig.customers.wait_idle(WAIT)
    rig.router.route(items)  # re-claimed while it is being answered
    assert rig.customers.wait_idle(WAIT)
    assert [t.msgids for t in rig.turns] == [["m1"]]
    stale = [parse_item(raw, KF) for raw in rig.store.claim_pending(KF, ME, 60.0)]  # read before finish
    rig.inflight.finish(KF, ["m1"])
    rig.router.route([item for item in stale if item is not None])
    assert rig.customers.wait_idle(WAIT)
    assert [t.msgids for t in rig.turns] == [["m1"]]


def test_concurrent_routes_of_the_same_items_hand_each_on_once(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    items = rig.accept(*[customer(f"m{n}") for n in range(20)])
    start = threading.Barrier(4, timeout=WAIT)

    def route() -> None:
        start.wait()
        rig.router.route(items)

    threads = [threading.Thread(target=route) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    rig.settle()
    assert sorted(m for t in rig.turns for m in t.msgids) == sorted(f"m{n}" for n in range(20))


def test_a_receptionist_message_flags_the_customer_and_is_finished(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.route(servicer("s1"))
    assert rig.takeover.is_flagged(KF, USER)
    assert rig.turns == [] and rig.pending() == []


@pytest.mark.parametrize(("change_type", "flagged"), [(1, True), (2, True), (4, True), (3, False)])
def test_session_status_changes_set_and_clear_the_flag(
    make_rig: Callable[..., Rig], change_type: int, flagged: bool
) -> None:
    rig = make_rig()
    rig.route(servicer("s1"))
    rig.route(event("e1", "session_status_change", change_type=change_type))
    assert rig.takeover.is_flagged(KF, USER) is flagged
    assert rig.pending() == []


def test_a_recall_is_recorded_and_finished(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.route(event("e1", "user_recall_msg", recall_msgid="m9"))
    assert rig.recalls.any_recalled(["m9"])
    assert rig.pending() == []


def test_the_welcome_goes_first_on_the_customers_worker(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(welcome="欢迎光临")
    rig.route(event("e1", "enter_session", welcome_code="CODE"), customer("m1"))
    assert rig.api.sent == [("CODE", "text", {"content": "欢迎光临"}, welcome_msgid("CODE"))]
    assert rig.api.threads[0].startswith("test-customer")  # not on the account's (caller's) thread
    assert rig.log == ["welcome CODE", "turn m1"]
    assert rig.pending() == []


def test_a_failed_welcome_still_finishes_its_event(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(welcome="欢迎光临")
    rig.api.error = KfApiError("code expired", errcode=40058)
    rig.route(event("e1", "enter_session", welcome_code="CODE"), customer("m1"))
    assert rig.log == ["welcome CODE", "turn m1"]
    assert rig.pending() == []


@pytest.mark.parametrize(("welcome", "code"), [("", "CODE"), ("欢迎光临", "")])
def test_no_welcome_without_a_text_or_a_code(make_rig: Callable[..., Rig], welcome: str, code: str) -> None:
    rig = make_rig(welcome=welcome)
    rig.route(event("e1", "enter_session", welcome_code=code))
    assert rig.api.sent == [] and rig.pending() == []


@pytest.mark.parametrize(
    "raw",
    [
        event("e1", "msg_send_fail", fail_msgid="r1_0", fail_type=6),
        event("e1", "servicer_status_change", servicer_userid="zs", status=1),
        event("e1", "some_future_event"),
    ],
)
def test_other_events_are_handled_and_finished(make_rig: Callable[..., Rig], raw: dict[str, Any]) -> None:
    rig = make_rig()
    rig.route(raw)
    assert rig.turns == [] and rig.pending() == [] and rig.inflight.count() == 0
    assert not rig.takeover.is_flagged(KF, USER)


@pytest.mark.parametrize(
    "raw",
    [
        {"msgid": "u1", "origin": 3, "msgtype": "text"},  # no external_userid
        {"msgid": "u1", "origin": 9, "external_userid": USER, "msgtype": "text"},
        {"msgid": "u1", "origin": 4, "msgtype": "event"},  # an event without a body
    ],
)
def test_unusable_items_are_logged_and_finished(
    make_rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture, raw: dict[str, Any]
) -> None:
    rig = make_rig()
    with caplog.at_level(logging.WARNING, logger=ROUTER_LOGGER):
        rig.route(raw)
    assert rig.pending() == [] and rig.turns == []
    assert any("u1" in r.getMessage() for r in caplog.records if r.name == ROUTER_LOGGER)


def test_a_message_that_cannot_be_built_is_finished_and_the_next_one_routed(
    make_rig: Callable[..., Rig], tmp_path: Path
) -> None:
    def make_message(item: CustomerMessage) -> WechatComKfMessage:
        if item.msgid == "bad":
            raise RuntimeError("bug")
        return WechatComKfMessage(item, None, tmp_path / "media")

    rig = make_rig(make_message=make_message)
    rig.route(customer("bad"), customer("m2"))
    assert [t.msgids for t in rig.turns] == [["m2"]]
    assert rig.pending() == []


class FlagWriteFails:
    """The JSON store, except that ``set_value`` raises StoreUnavailable (the channel is stopping)."""

    def __init__(self, inner: JsonFileStore) -> None:
        self.inner = inner

    def set_value(self, key: str, value: str | None, ttl_seconds: float | None) -> None:
        raise StoreUnavailable("stopping")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_an_item_the_store_cannot_record_stays_pending_and_routing_goes_on(
    make_rig: Callable[..., Rig], store: JsonFileStore
) -> None:
    rig = make_rig(store=FlagWriteFails(store))
    rig.router.route(rig.accept(servicer("s1"), customer("m2")))
    assert rig.customers.wait_idle(WAIT)
    assert [t.msgids for t in rig.turns] == [["m2"]]
    assert rig.pending() == ["s1"]  # handled again after the next start
