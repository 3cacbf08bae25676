"""EventHandler: takeover, recall, send failures, receptionist events, unknown types, the welcome.

Takeover is the real one on a JsonFileStore; the welcome's API is a recording fake of
``send_msg_on_event`` (the HTTP path is covered by tests/e2e).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from channel.wechatcom_kf.errors import KfApiError, describe_fail_type
from channel.wechatcom_kf.inbound.events import EventHandler, Welcome
from channel.wechatcom_kf.inbound.items import EnterSession, Event, parse_item
from channel.wechatcom_kf.outbound.msgid import welcome_msgid
from channel.wechatcom_kf.session.recalls import Recalls
from channel.wechatcom_kf.session.takeover import Takeover
from channel.wechatcom_kf.store import JsonFileStore

KF, USER = "wkEV", "wmEV"
LOGGER = "channel.wechatcom_kf.inbound.events"
_ids = iter(range(1, 1_000_000))


class RecordingApi:
    """``send_msg_on_event`` that records its calls; ``error`` is raised instead when set."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any], str | None]] = []
        self.error: Exception | None = None

    def send_msg_on_event(self, code: str, msgtype: str, body: dict[str, Any], msgid: str | None) -> str:
        self.sent.append((code, msgtype, body, msgid))
        if self.error is not None:
            raise self.error
        return msgid or ""


class NoStateApi:
    def get_service_state(self, open_kfid: str, external_userid: str) -> Any:
        raise AssertionError("not asked by event handling")

    def trans_service_state(self, *args: Any, **kwargs: Any) -> str | None:
        raise AssertionError("not asked by event handling")


def event(event_type: str, **fields: Any) -> Event:
    body = {"event_type": event_type, "open_kfid": KF, "external_userid": USER, **fields}
    item = parse_item({"msgid": f"e{next(_ids)}", "origin": 4, "msgtype": "event", "event": body}, KF)
    assert isinstance(item, Event)
    return item


def enter(code: str = "CODE1") -> EnterSession:
    item = event("enter_session", welcome_code=code, scene="sc")
    assert isinstance(item, EnterSession)
    return item


class Rig:
    def __init__(self, store: JsonFileStore, welcome: str = "您好，我是智能客服") -> None:
        self.api = RecordingApi()
        self.takeover = Takeover(store, NoStateApi())
        self.recalls = Recalls()
        self.handler = EventHandler(self.api, self.takeover, self.recalls, Welcome.configured(welcome, None))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JsonFileStore]:
    s = JsonFileStore(tmp_path)
    yield s
    s.close()


@pytest.fixture
def rig(store: JsonFileStore) -> Rig:
    return Rig(store)


@pytest.mark.parametrize("change_type", [1, 2, 4])
def test_a_human_taking_the_session_flags_the_customer(rig: Rig, change_type: int) -> None:
    rig.handler.handle(event("session_status_change", change_type=change_type, new_servicer_userid="zs"))
    assert rig.takeover.is_flagged(KF, USER)


def test_the_session_ending_releases_the_customer(rig: Rig) -> None:
    rig.takeover.mark_human(KF, USER, "test")
    rig.handler.handle(event("session_status_change", change_type=3))
    assert not rig.takeover.is_flagged(KF, USER)


def test_a_recall_is_recorded(rig: Rig) -> None:
    rig.handler.handle(event("user_recall_msg", recall_msgid="m7"))
    assert rig.recalls.any_recalled(["m7"])
    rig.handler.handle(event("user_recall_msg"))  # no msgid: nothing to remember
    assert len(rig.recalls) == 1


@pytest.mark.parametrize(("fail_type", "reason"), [(6, describe_fail_type(6)), (None, "unknown reason")])
def test_a_send_failure_is_logged_with_its_reason(
    rig: Rig, caplog: pytest.LogCaptureFixture, fail_type: int | None, reason: str
) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        rig.handler.handle(event("msg_send_fail", fail_msgid="r123_0", fail_type=fail_type))
    (record,) = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.WARNING
    assert "r123_0" in record.getMessage() and reason in record.getMessage()


@pytest.mark.parametrize(
    ("event_type", "fields", "detail"),
    [
        ("servicer_status_change", {"status": 2, "stop_type": 1}, "status 2, stop_type 1"),
        ("reject_customer_msg_switch_change", {"reject_switch": 1}, "rejects the customer"),
        ("reject_customer_msg_switch_change", {"reject_switch": 0}, "accepts the customer again"),
        ("servicer_recall_msg", {"recall_msgid": "m1"}, "recalled a message"),
    ],
)
def test_receptionist_events_are_logged_only(
    rig: Rig, caplog: pytest.LogCaptureFixture, event_type: str, fields: dict[str, Any], detail: str
) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        rig.handler.handle(event(event_type, servicer_userid="zhangsan", **fields))
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == [
        f"receptionist zhangsan of {KF}: {detail}"
    ]
    assert not rig.takeover.is_flagged(KF, USER)
    assert len(rig.recalls) == 0


def test_unknown_event_types_are_logged_once_per_type(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    first, second = f"new_{uuid.uuid4().hex[:6]}", f"other_{uuid.uuid4().hex[:6]}"
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for kind in (first, first, second, first, second):
            rig.handler.handle(event(kind))
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.INFO]
    assert sum(first in line for line in lines) == 1
    assert sum(second in line for line in lines) == 1


def test_handling_an_enter_session_does_nothing_by_itself(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        rig.handler.handle(enter())
    assert rig.api.sent == []
    assert not [r for r in caplog.records if r.name == LOGGER]


def test_a_welcome_is_wanted_for_an_enter_session_with_a_code_and_a_text(store: JsonFileStore) -> None:
    rig = Rig(store)
    assert rig.handler.wants_welcome(enter())
    assert not rig.handler.wants_welcome(enter(code=""))
    assert not rig.handler.wants_welcome(event("session_status_change", change_type=1))
    assert not Rig(store, welcome="").handler.wants_welcome(enter())
    assert not Rig(store, welcome="  \n").handler.wants_welcome(enter())


def test_the_welcome_is_the_configured_text_with_a_deterministic_msgid(store: JsonFileStore) -> None:
    rig = Rig(store, welcome="  您好，我是智能客服\n")
    rig.handler.send_welcome(enter("CODE1"))
    Rig(store).handler.send_welcome(enter("CODE1"))  # e.g. after a restart: the same msgid
    rig.handler.send_welcome(enter("CODE2"))
    assert rig.api.sent == [
        ("CODE1", "text", {"content": "您好，我是智能客服"}, welcome_msgid("CODE1")),
        ("CODE2", "text", {"content": "您好，我是智能客服"}, welcome_msgid("CODE2")),
    ]
    assert welcome_msgid("CODE1") != welcome_msgid("CODE2")
    assert len(welcome_msgid("CODE1").encode()) <= 32


@pytest.mark.parametrize(
    ("error", "level"),
    [
        (KfApiError("code expired", errcode=40058, api="kf/send_msg_on_event"), logging.WARNING),
        (RuntimeError("bug"), logging.ERROR),
    ],
)
def test_a_failed_welcome_never_raises(
    rig: Rig, caplog: pytest.LogCaptureFixture, error: Exception, level: int
) -> None:
    rig.api.error = error
    with caplog.at_level(logging.INFO, logger=LOGGER):
        rig.handler.send_welcome(enter())
    assert len(rig.api.sent) == 1
    assert [r.levelno for r in caplog.records if r.name == LOGGER] == [level]
