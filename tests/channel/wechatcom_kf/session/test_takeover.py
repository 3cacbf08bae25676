"""Takeover: the human-owned flag, what sets and clears it, the service_state check, the bot's claim.

The store is the real JsonFileStore (the flag is a value in it); the API is a fake of the two
service_state calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from channel.wechatcom_kf.errors import KfApiError, KfNetworkError
from channel.wechatcom_kf.session.takeover import CLAIM_TTL_SECONDS, Takeover, flag_key
from channel.wechatcom_kf.store import JsonFileStore

KF, USER = "wkA", "wmB"


@dataclass
class State:
    state: Any
    servicer_userid: str | None = None


class FakeStateApi:
    def __init__(self, state: Any = 3) -> None:
        self.state = state
        self.calls = 0
        self.fail = False
        self.trans: list[tuple[str, str, int]] = []
        self.trans_error: Exception | None = None
        self.answer: Any = None  # when set, get_service_state returns it instead of a State

    def trans_service_state(
        self, open_kfid: str, external_userid: str, service_state: int, servicer_userid: str | None = None
    ) -> str | None:
        self.trans.append((open_kfid, external_userid, service_state))
        if self.trans_error is not None:
            raise self.trans_error
        self.state = service_state
        return None

    def get_service_state(self, open_kfid: str, external_userid: str) -> Any:
        self.calls += 1
        if self.fail:
            raise KfNetworkError("down")
        return self.answer if self.answer is not None else State(self.state)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JsonFileStore]:
    s = JsonFileStore(tmp_path)
    yield s
    s.close()


def refused() -> KfApiError:
    return KfApiError("not allowed", errcode=95016, api="kf/service_state/trans")


def test_unflagged_customers_are_answered_without_an_api_call(store: JsonFileStore) -> None:
    api = FakeStateApi()
    assert Takeover(store, api).bot_may_answer(KF, USER)
    assert api.calls == 0


def test_a_receptionist_message_flags_the_customer_until_wecom_says_otherwise(store: JsonFileStore) -> None:
    api = FakeStateApi(state=3)
    takeover = Takeover(store, api)
    takeover.mark_human(KF, USER, "receptionist message")
    assert not takeover.bot_may_answer(KF, USER)
    api.state = 2
    assert not takeover.bot_may_answer(KF, USER)
    api.state = 0  # the customer wrote again after the session ended
    assert takeover.bot_may_answer(KF, USER)
    assert not takeover.is_flagged(KF, USER)
    assert takeover.bot_may_answer(KF, USER)
    assert api.calls == 3


@pytest.mark.parametrize("change_type", [1, 2, 4])
def test_session_taken_by_a_human_flags(store: JsonFileStore, change_type: int) -> None:
    takeover = Takeover(store, FakeStateApi())
    takeover.on_session_status_change(KF, USER, change_type)
    assert takeover.is_flagged(KF, USER)
    assert store.get_value(flag_key(KF, USER)) is not None


def test_session_ended_clears_the_flag(store: JsonFileStore) -> None:
    takeover = Takeover(store, FakeStateApi())
    takeover.mark_human(KF, USER, "test")
    takeover.on_session_status_change(KF, USER, 3)
    assert not takeover.is_flagged(KF, USER)
    assert store.get_value(flag_key(KF, USER)) is None


@pytest.mark.parametrize("change_type", [None, 0, 5, "1"])
def test_other_change_types_change_nothing(store: JsonFileStore, change_type: Any) -> None:
    takeover = Takeover(store, FakeStateApi())
    takeover.on_session_status_change(KF, USER, change_type)
    assert not takeover.is_flagged(KF, USER)
    takeover.mark_human(KF, USER, "test")
    takeover.on_session_status_change(KF, USER, change_type)
    assert takeover.is_flagged(KF, USER)


def test_a_status_change_without_a_customer_is_ignored(store: JsonFileStore) -> None:
    takeover = Takeover(store, FakeStateApi())
    takeover.on_session_status_change(KF, "", 1)
    assert not takeover.is_flagged(KF, "")
    takeover.mark_human(KF, "", "test")
    assert store.get_value(flag_key(KF, "")) is None


def test_flags_are_per_account_and_customer(store: JsonFileStore) -> None:
    takeover = Takeover(store, FakeStateApi())
    takeover.mark_human(KF, USER, "test")
    assert not takeover.is_flagged("wkOther", USER)
    assert not takeover.is_flagged(KF, "wmOther")


def test_unknown_state_keeps_the_bot_silent(store: JsonFileStore) -> None:
    api = FakeStateApi()
    api.fail = True
    takeover = Takeover(store, api)
    takeover.mark_human(KF, USER, "test")
    assert not takeover.bot_may_answer(KF, USER)
    assert takeover.is_flagged(KF, USER)


@pytest.mark.parametrize("answer", [object(), State("three"), State(None)])
def test_an_unreadable_state_keeps_the_bot_silent(store: JsonFileStore, answer: Any) -> None:
    api = FakeStateApi()
    api.answer = answer
    takeover = Takeover(store, api)
    takeover.mark_human(KF, USER, "test")
    assert not takeover.bot_may_answer(KF, USER)
    assert takeover.is_flagged(KF, USER)


def test_flag_expires_with_the_session(tmp_path: Path) -> None:
    clock = Clock()
    store = JsonFileStore(tmp_path, clock=clock)
    try:
        takeover = Takeover(store, FakeStateApi(), ttl_seconds=48 * 3600)
        takeover.mark_human(KF, USER, "test")
        clock.now += 48 * 3600 - 1
        assert takeover.is_flagged(KF, USER)
        clock.now += 2
        assert not takeover.is_flagged(KF, USER)
    finally:
        store.close()


def test_flags_survive_a_restart(tmp_path: Path) -> None:
    first = JsonFileStore(tmp_path)
    Takeover(first, FakeStateApi()).mark_human(KF, USER, "test")
    first.close()
    second = JsonFileStore(tmp_path)
    try:
        assert Takeover(second, FakeStateApi()).is_flagged(KF, USER)
    finally:
        second.close()


def test_the_first_reply_claims_the_session_once(store: JsonFileStore) -> None:
    api = FakeStateApi(state=0)
    takeover = Takeover(store, api)
    assert takeover.claim_for_bot(KF, USER)
    assert takeover.claim_for_bot(KF, USER)
    assert api.trans == [(KF, USER, 1)]
    assert api.state == 1
    assert takeover.claim_for_bot(KF, "wmOther")
    assert len(api.trans) == 2


def test_a_claim_is_forgotten_when_the_session_ends_or_a_human_takes_it(store: JsonFileStore) -> None:
    api = FakeStateApi(state=0)
    takeover = Takeover(store, api)
    takeover.claim_for_bot(KF, USER)
    takeover.on_session_status_change(KF, USER, 3)
    takeover.claim_for_bot(KF, USER)
    assert len(api.trans) == 2
    takeover.mark_human(KF, USER, "send refused with 95018")
    takeover.claim_for_bot(KF, USER)
    assert len(api.trans) == 3
    takeover.mark_human(KF, USER, "receptionist message")
    takeover.claim_for_bot(KF, USER)
    assert len(api.trans) == 4


def test_a_claim_expires_after_48_hours(store: JsonFileStore) -> None:
    api = FakeStateApi(state=0)
    clock = Clock()
    takeover = Takeover(store, api, clock=clock)
    takeover.claim_for_bot(KF, USER)
    clock.now += CLAIM_TTL_SECONDS - 1
    takeover.claim_for_bot(KF, USER)
    assert len(api.trans) == 1
    clock.now += 2
    takeover.claim_for_bot(KF, USER)
    assert len(api.trans) == 2


def test_claims_are_bounded(store: JsonFileStore) -> None:
    api = FakeStateApi(state=0)
    takeover = Takeover(store, api, max_claims=3)
    for n in range(10):
        takeover.claim_for_bot(KF, f"wm{n}")
    takeover.claim_for_bot(KF, "wm9")  # among the newest: remembered
    assert len(api.trans) == 10
    takeover.claim_for_bot(KF, "wm0")  # the oldest went first: claimed again
    assert len(api.trans) == 11


@pytest.mark.parametrize("state", [2, 3])
def test_a_refused_claim_of_a_human_session_silences_the_bot(store: JsonFileStore, state: int) -> None:
    api = FakeStateApi(state=state)
    api.trans_error = refused()
    takeover = Takeover(store, api)
    assert not takeover.claim_for_bot(KF, USER)
    assert api.calls == 1
    assert takeover.is_flagged(KF, USER)


def test_a_refused_claim_of_a_bot_session_is_answered_and_remembered(store: JsonFileStore) -> None:
    api = FakeStateApi(state=1)
    api.trans_error = refused()
    takeover = Takeover(store, api)
    assert takeover.claim_for_bot(KF, USER)
    assert takeover.claim_for_bot(KF, USER)
    assert (len(api.trans), api.calls) == (1, 1)


def test_a_refused_claim_of_an_ended_session_is_answered_and_tried_again(store: JsonFileStore) -> None:
    api = FakeStateApi(state=4)
    api.trans_error = refused()
    takeover = Takeover(store, api)
    assert takeover.claim_for_bot(KF, USER)
    assert takeover.claim_for_bot(KF, USER)
    assert (len(api.trans), api.calls) == (2, 2)
    assert not takeover.is_flagged(KF, USER)


def test_a_refused_claim_with_unknown_state_stays_silent(store: JsonFileStore) -> None:
    api = FakeStateApi()
    api.trans_error = refused()
    api.fail = True
    assert not Takeover(store, api).claim_for_bot(KF, USER)


def test_other_claim_errors_are_answered_anyway_and_retried_next_time(store: JsonFileStore) -> None:
    api = FakeStateApi(state=0)
    api.trans_error = KfNetworkError("down")
    takeover = Takeover(store, api)
    assert takeover.claim_for_bot(KF, USER)
    assert api.calls == 0
    api.trans_error = None
    assert takeover.claim_for_bot(KF, USER)
    assert len(api.trans) == 2
    assert not takeover.is_flagged(KF, USER)
