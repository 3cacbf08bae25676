"""Takeover: the human-owned flag, what sets and clears it, and the service_state check."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from channel.wechatcom_kf.errors import KfApiError, KfNetworkError
from channel.wechatcom_kf.expiring import ExpiringKeys
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
        self.trans: list[tuple[str, str, int]] = []
        self.trans_error: Exception | None = None

    def trans_service_state(
        self, open_kfid: str, external_userid: str, service_state: int, servicer_userid: str | None = None
    ) -> str | None:
        self.trans.append((open_kfid, external_userid, service_state))
        if self.trans_error is not None:
            raise self.trans_error
        self.state = service_state
        return None

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


def test_the_first_reply_claims_the_session_once(store):
    api = FakeStateApi(state=0)
    takeover = Takeover(store, api)
    assert takeover.claim_for_bot(KF, USER)
    assert takeover.claim_for_bot(KF, USER)
    assert api.trans == [(KF, USER, 1)]
    assert api.state == 1
    assert takeover.claim_for_bot(KF, "wmOther")
    assert len(api.trans) == 2


def test_a_claim_is_forgotten_when_the_session_ends_or_a_human_takes_it(store):
    api = FakeStateApi(state=0)
    takeover = Takeover(store, api)
    takeover.claim_for_bot(KF, USER)
    takeover.on_session_status_change({"open_kfid": KF, "external_userid": USER, "change_type": 3})
    takeover.claim_for_bot(KF, USER)
    assert len(api.trans) == 2
    takeover.mark_human(KF, USER, "send refused with 95018")
    takeover.claim_for_bot(KF, USER)
    assert len(api.trans) == 3


def test_a_claim_expires_after_48_hours():
    now = [0.0]
    keys = ExpiringKeys(48 * 3600, 10, clock=lambda: now[0])
    keys.add("a")
    now[0] = 48 * 3600 - 1
    assert "a" in keys
    now[0] = 48 * 3600 + 1
    assert "a" not in keys
    assert len(keys) == 0


def test_claims_are_bounded():
    keys = ExpiringKeys(3600, 3)
    for n in range(10):
        keys.add(n)
    assert len(keys) == 3
    assert 9 in keys and 0 not in keys


@pytest.mark.parametrize("state", [2, 3])
def test_a_refused_claim_of_a_human_session_silences_the_bot(store, state):
    api = FakeStateApi(state=state)
    api.trans_error = KfApiError("not allowed", errcode=95016, api="kf/service_state/trans")
    takeover = Takeover(store, api)
    assert not takeover.claim_for_bot(KF, USER)
    assert api.calls == 1
    assert takeover.is_flagged(KF, USER)


def test_a_refused_claim_of_a_bot_session_is_answered_and_remembered(store):
    api = FakeStateApi(state=1)
    api.trans_error = KfApiError("not allowed", errcode=95016, api="kf/service_state/trans")
    takeover = Takeover(store, api)
    assert takeover.claim_for_bot(KF, USER)
    assert takeover.claim_for_bot(KF, USER)
    assert (len(api.trans), api.calls) == (1, 1)


def test_a_refused_claim_with_unknown_state_stays_silent(store):
    api = FakeStateApi()
    api.trans_error = KfApiError("not allowed", errcode=95016, api="kf/service_state/trans")
    api.fail = True
    assert not Takeover(store, api).claim_for_bot(KF, USER)


def test_other_claim_errors_are_answered_anyway_and_retried_next_time(store):
    api = FakeStateApi(state=0)
    api.trans_error = KfNetworkError("down")
    takeover = Takeover(store, api)
    assert takeover.claim_for_bot(KF, USER)
    assert api.calls == 0
    api.trans_error = None
    assert takeover.claim_for_bot(KF, USER)
    assert len(api.trans) == 2
    assert not takeover.is_flagged(KF, USER)
