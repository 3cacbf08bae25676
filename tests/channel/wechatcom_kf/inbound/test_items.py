"""parse_item: typed records for kf/sync_msg items; never raises, whatever the item holds."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest

from channel.wechatcom_kf.inbound.items import (
    MAX_ID_CHARS,
    CustomerMessage,
    EnterSession,
    Event,
    Item,
    SendFailed,
    ServicerEvent,
    ServicerMessage,
    SessionStatusChange,
    UnusableItem,
    UserRecall,
    parse_item,
)

KF = "wkPULLED"
HUGE = "x" * 100_000
GARBAGE: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**70,
    1.5,
    float("nan"),
    "",
    HUGE,
    [],
    [1, "a"],
    {},
    {"a": 1},
]


def customer(**fields: Any) -> dict[str, Any]:
    raw = {
        "msgid": "from_msgid_1",
        "open_kfid": KF,
        "external_userid": "wmCUSTOMER",
        "send_time": 1_700_000_000,
        "origin": 3,
        "msgtype": "text",
        "text": {"content": "hello"},
    }
    raw.update(fields)
    return raw


def event(event_type: str, **fields: Any) -> dict[str, Any]:
    body = {"event_type": event_type, "open_kfid": KF, "external_userid": "wmCUSTOMER", **fields}
    return {"msgid": "evt_1", "send_time": 1_700_000_001, "origin": 4, "msgtype": "event", "event": body}


def check(item: Item | None) -> Item:
    """What holds for every parsed item: typed, of the pulled account, ids cut, bodies dicts."""
    assert isinstance(item, Item)
    assert item.open_kfid == KF
    for f in dataclasses.fields(item):
        value = getattr(item, f.name)
        if f.name in ("raw", "body"):
            assert isinstance(value, dict)
        elif f.name in ("send_time", "fail_type", "change_type"):
            assert value is None or type(value) is int, f.name
        elif f.name != "reason":
            assert isinstance(value, str) and len(value) <= MAX_ID_CHARS, f.name
    return item


def test_customer_message() -> None:
    raw = customer()
    item = check(parse_item(raw, KF))
    assert type(item) is CustomerMessage
    assert (item.msgid, item.external_userid, item.msgtype) == ("from_msgid_1", "wmCUSTOMER", "text")
    assert item.send_time == 1_700_000_000 and item.body == {"content": "hello"}
    assert item.key == (KF, "wmCUSTOMER") and item.raw is raw
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.msgid = "other"  # type: ignore[misc]


@pytest.mark.parametrize("msgtype", ["image", "voice", "video", "file", "location", "link", "merged_msg"])
def test_customer_message_body_is_the_object_named_after_msgtype(msgtype: str) -> None:
    body = {"media_id": "MEDIA", "title": "t"}
    item = check(parse_item(customer(msgtype=msgtype, **{msgtype: body}), KF))
    assert isinstance(item, CustomerMessage) and item.msgtype == msgtype and item.body == body


@pytest.mark.parametrize("body", [None, "text", 3, ["a"], True])
def test_customer_message_without_a_usable_body_has_an_empty_one(body: Any) -> None:
    raw = customer(text=body)
    if body is None:
        del raw["text"]
    item = check(parse_item(raw, KF))
    assert isinstance(item, CustomerMessage) and item.body == {}


def test_servicer_message() -> None:
    raw = customer(origin=5, servicer_userid="zhangsan")
    item = check(parse_item(raw, KF))
    assert type(item) is ServicerMessage
    assert (item.external_userid, item.servicer_userid) == ("wmCUSTOMER", "zhangsan")


def test_the_item_belongs_to_the_account_it_was_pulled_from() -> None:
    assert check(parse_item(customer(open_kfid="wkOTHER"), KF)).open_kfid == KF
    raw = event("enter_session")
    raw["open_kfid"] = raw["event"]["open_kfid"] = "wkOTHER"
    assert check(parse_item(raw, KF)).open_kfid == KF


def test_enter_session() -> None:
    raw = event("enter_session", scene="menu", scene_param="p%3D1", welcome_code="WELCOME")
    item = check(parse_item(raw, KF))
    assert type(item) is EnterSession and item.event_type == "enter_session"
    assert (item.external_userid, item.welcome_code, item.scene, item.scene_param) == (
        "wmCUSTOMER",
        "WELCOME",
        "menu",
        "p%3D1",
    )
    assert check(parse_item(event("enter_session"), KF)).welcome_code == ""  # type: ignore[attr-defined]


def test_msg_send_fail() -> None:
    item = check(parse_item(event("msg_send_fail", fail_msgid="sent_1", fail_type=10), KF))
    assert type(item) is SendFailed and (item.fail_msgid, item.fail_type) == ("sent_1", 10)


def test_session_status_change() -> None:
    raw = event("session_status_change", change_type=1, new_servicer_userid="lisi", msg_code="CODE")
    item = check(parse_item(raw, KF))
    assert type(item) is SessionStatusChange
    assert (item.change_type, item.new_servicer_userid, item.msg_code) == (1, "lisi", "CODE")


def test_user_recall_msg() -> None:
    item = check(parse_item(event("user_recall_msg", recall_msgid="from_msgid_9"), KF))
    assert type(item) is UserRecall and item.recall_msgid == "from_msgid_9"


@pytest.mark.parametrize(
    ("event_type", "fields", "detail"),
    [
        ("servicer_status_change", {"status": 2, "stop_type": 1}, "status 2, stop_type 1"),
        ("servicer_recall_msg", {"recall_msgid": "m"}, "recalled a message"),
        ("reject_customer_msg_switch_change", {"reject_switch": 1}, "rejects the customer"),
        ("reject_customer_msg_switch_change", {"reject_switch": 0}, "accepts the customer again"),
        ("reject_customer_msg_switch_change", {"reject_switch": True}, "accepts the customer again"),
        ("servicer_status_change", {"status": True, "stop_type": "0"}, "status None, stop_type None"),
    ],
)
def test_servicer_events(event_type: str, fields: dict[str, Any], detail: str) -> None:
    item = check(parse_item(event(event_type, servicer_userid="wangwu", **fields), KF))
    assert type(item) is ServicerEvent and item.event_type == event_type
    assert item.servicer_userid == "wangwu" and item.detail == detail


@pytest.mark.parametrize("event_type", ["kf_brand_new_event", "", None, 5, ["enter_session"]])
def test_unknown_event_types_stay_event(event_type: Any) -> None:
    raw = event("x")
    raw["event"]["event_type"] = event_type
    item = check(parse_item(raw, KF))
    assert type(item) is Event
    assert item.event_type == (event_type if isinstance(event_type, str) else "")


def test_an_item_is_an_event_by_msgtype_or_by_origin() -> None:
    by_origin = event("user_recall_msg", recall_msgid="m")
    by_origin["msgtype"] = "text"
    assert type(parse_item(by_origin, KF)) is UserRecall
    by_msgtype = event("user_recall_msg", recall_msgid="m")
    by_msgtype["origin"] = 3
    assert type(parse_item(by_msgtype, KF)) is UserRecall


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (customer(external_userid=None), "no external_userid"),
        (customer(external_userid=""), "no external_userid"),
        (customer(external_userid=42), "no external_userid"),
        (customer(origin=7), "origin"),
        (customer(origin=None), "origin"),
        (customer(origin="3"), "origin"),
        (customer(origin=True), "origin"),
        (customer(msgtype=None), "msgtype"),
        (customer(msgtype=["text"]), "msgtype"),
        ({**event("enter_session"), "event": None}, "event"),
        ({**event("enter_session"), "event": ["enter_session"]}, "event"),
        ({"msgid": "m", "origin": 4}, "event"),
    ],
)
def test_items_that_cannot_be_handled_are_unusable(raw: dict[str, Any], reason: str) -> None:
    item = check(parse_item(raw, KF))
    assert type(item) is UnusableItem and reason in item.reason


@pytest.mark.parametrize("raw", [None, [], "item", 3, True, b"{}", ("msgid", "m")])
def test_not_a_dict_is_none(raw: Any) -> None:
    assert parse_item(raw, KF) is None


@pytest.mark.parametrize("msgid", [None, "", 123, True, ["m"], {"id": "m"}, 1.5])
def test_without_a_msgid_is_none(msgid: Any) -> None:
    raw = customer(msgid=msgid)
    if msgid is None:
        del raw["msgid"]
    assert parse_item(raw, KF) is None


@pytest.mark.parametrize("value", [True, False, 1.5, "1700000000", None, [1], -(2**70) + 0.5])
def test_send_time_must_be_an_int(value: Any) -> None:
    assert check(parse_item(customer(send_time=value), KF)).send_time is None


def test_bools_are_not_ints_in_events() -> None:
    failed = check(parse_item(event("msg_send_fail", fail_msgid="m", fail_type=True), KF))
    assert isinstance(failed, SendFailed) and failed.fail_type is None
    changed = check(parse_item(event("session_status_change", change_type=False), KF))
    assert isinstance(changed, SessionStatusChange) and changed.change_type is None


def test_huge_strings_are_cut() -> None:
    item = check(parse_item(customer(msgid="m" * 10_000, external_userid="w" * 10_000), KF))
    assert item.msgid == "m" * MAX_ID_CHARS
    assert isinstance(item, CustomerMessage) and item.external_userid == "w" * MAX_ID_CHARS
    raw = event("enter_session", welcome_code=HUGE, scene=HUGE, scene_param=HUGE, external_userid=HUGE)
    entered = check(parse_item(raw, KF))
    assert isinstance(entered, EnterSession) and len(entered.welcome_code) == MAX_ID_CHARS
    long_type = check(parse_item(customer(msgtype="t" * 1_000), KF))
    assert isinstance(long_type, CustomerMessage) and len(long_type.msgtype) <= 64


@pytest.mark.parametrize("origin", [HUGE, list(range(5_000)), {"k": HUGE}])
def test_the_reason_does_not_carry_a_huge_value(origin: Any) -> None:
    """The reason goes into a WARNING line: a huge origin must not make a huge line."""
    item = check(parse_item(customer(origin=origin), KF))
    assert isinstance(item, UnusableItem)
    reason_length = len(item.reason)
    assert reason_length < 2 * MAX_ID_CHARS


CUSTOMER_FIELDS = [
    "open_kfid",
    "external_userid",
    "send_time",
    "origin",
    "servicer_userid",
    "msgtype",
    "text",
]


@pytest.mark.parametrize("name", CUSTOMER_FIELDS)
@pytest.mark.parametrize("origin", [3, 5])
def test_garbage_in_any_message_field_never_raises(name: str, origin: int) -> None:
    for value in GARBAGE:
        raw = customer(origin=origin, servicer_userid="s")
        raw[name] = value
        check(parse_item(raw, KF))


EVENT_TYPES = [
    "enter_session",
    "msg_send_fail",
    "session_status_change",
    "user_recall_msg",
    "servicer_status_change",
    "servicer_recall_msg",
    "reject_customer_msg_switch_change",
    "unknown",
]
EVENT_FIELDS = [
    "external_userid",
    "welcome_code",
    "scene",
    "scene_param",
    "fail_msgid",
    "fail_type",
    "change_type",
    "new_servicer_userid",
    "msg_code",
    "recall_msgid",
    "servicer_userid",
    "status",
    "stop_type",
    "reject_switch",
    "open_kfid",
]


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_garbage_in_any_event_field_never_raises(event_type: str) -> None:
    for name, value in itertools.product(EVENT_FIELDS, GARBAGE):
        item = check(parse_item(event(event_type, **{name: value}), KF))
        assert isinstance(item, Event)
    for name, value in itertools.product(["msgid", "send_time", "origin", "msgtype", "open_kfid"], GARBAGE):
        raw = event(event_type)
        raw[name] = value
        parsed = parse_item(raw, KF)
        assert parsed is None or check(parsed).open_kfid == KF
