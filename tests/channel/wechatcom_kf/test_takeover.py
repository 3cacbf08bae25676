"""Takeover: the human-owned flag, what sets and clears it, and the service_state check."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from channel.wechatcom_kf.errors import KfNetworkError
from channel.wechatcom_kf.store import JsonFileStore
from channel.wechatcom_kf.takeover import Takeover, flag_key

KF, USER = "wkA", "wmB"


@dataclass
class State:
    state: int
    servicer_userid: str | None = None


class FakeStateApi:
    def __init__(self, state: int = 3) -> None:
        self.state = state
        self.calls = 0
        self.fail = False

    def get_service_state(self, open_kfid: str, external_userid: str) -> State:
        self.calls += 1
        if self.fail:
            raise KfNetworkError("down")
        return State(self.state)


@pytest.fixture
def store(tmp_path):
    s = JsonFileStore(tmp_path)
    yield s
    s.close()


def test_unflagged_customers_are_answered_without_an_api_call(store):
    api = FakeStateApi()
    assert Takeover(store, api).bot_may_answer(KF, USER)
    assert api.calls == 0


def test_a_receptionist_message_flags_the_customer_until_wecom_says_otherwise(store):
    api = FakeStateApi(state=3)
    takeover = Takeover(store, api)
    takeover.on_servicer_message({"open_kfid": KF, "external_userid": USER, "origin": 5})
    assert not takeover.bot_may_answer(KF, USER)
    api.state = 2
    assert not takeover.bot_may_answer(KF, USER)
    api.state = 0  # the customer wrote again after the session ended
    assert takeover.bot_may_answer(KF, USER)
    assert not takeover.is_flagged(KF, USER)
    assert takeover.bot_may_answer(KF, USER)
    assert api.calls == 3


@pytest.mark.parametrize("change_type", [1, 2, 4])
def test_session_taken_by_a_human_flags(store, change_type):
    takeover = Takeover(store, FakeStateApi())
    takeover.on_session_status_change({"open_kfid": KF, "external_userid": USER, "change_type": change_type})
    assert takeover.is_flagged(KF, USER)
    assert store.get_flag(flag_key(KF, USER)) is not None


def test_session_ended_clears_the_flag(store):
    takeover = Takeover(store, FakeStateApi())
    takeover.mark_human(KF, USER, "test")
    takeover.on_session_status_change({"open_kfid": KF, "external_userid": USER, "change_type": 3})
    assert not takeover.is_flagged(KF, USER)


def test_flags_are_per_account_and_customer(store):
    takeover = Takeover(store, FakeStateApi())
    takeover.mark_human(KF, USER, "test")
    assert not takeover.is_flagged("wkOther", USER)
    assert not takeover.is_flagged(KF, "wmOther")


def test_unknown_state_keeps_the_bot_silent(store):
    api = FakeStateApi()
    api.fail = True
    takeover = Takeover(store, api)
    takeover.mark_human(KF, USER, "test")
    assert not takeover.bot_may_answer(KF, USER)
    assert takeover.is_flagged(KF, USER)


def test_flag_expires_with_the_session(tmp_path):
    now = [1000.0]
    store = JsonFileStore(tmp_path, clock=lambda: now[0])
    try:
        takeover = Takeover(store, FakeStateApi(), ttl_seconds=48 * 3600)
        takeover.mark_human(KF, USER, "test")
        now[0] += 48 * 3600 + 1
        assert not takeover.is_flagged(KF, USER)
    finally:
        store.close()


def test_flags_survive_a_restart(tmp_path):
    first = JsonFileStore(tmp_path)
    Takeover(first, FakeStateApi()).mark_human(KF, USER, "test")
    first.close()
    second = JsonFileStore(tmp_path)
    try:
        assert Takeover(second, FakeStateApi()).is_flagged(KF, USER)
    finally:
        second.close()
