"""Puller: one job per account, coalescing, paging, 95007, history, retries, locks, claims, sweeps.

WeCom is an in-memory fake of ``sync_msg`` only (the HTTP path is covered by tests/e2e); the store is
the real JsonFileStore with an injected clock (also the puller's). What the puller accepts goes
through the real Router, InFlight, Takeover, EventHandler, BudgetLedger and a TurnAssembler (merge
window 0); a test reads the turns that reach ``on_turn``, which finishes them as the delivery would.
``Harness.routed`` also lists what reached ``Router.route``, in order (a subclass that only records).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from channel.wechatcom_kf.errors import KfCredentialError, KfNetworkError, KfSyncTokenInvalid
from channel.wechatcom_kf.inbound.events import EventHandler
from channel.wechatcom_kf.inbound.inflight import InFlight
from channel.wechatcom_kf.inbound.items import Item
from channel.wechatcom_kf.inbound.puller import LOCKED_RETRY_SECONDS, HistoryPolicy, Puller
from channel.wechatcom_kf.inbound.router import Router
from channel.wechatcom_kf.inbound.turns import Turn, TurnAssembler
from channel.wechatcom_kf.retry import RetryPolicy
from channel.wechatcom_kf.session.budget import BudgetLedger
from channel.wechatcom_kf.session.recalls import Recalls
from channel.wechatcom_kf.session.takeover import Takeover
from channel.wechatcom_kf.store import JsonFileStore, ResilientStore, StoreUnavailable
from channel.wechatcom_kf.wechatcom_kf_message import WechatComKfMessage
from channel.wechatcom_kf.workers import KeyedWorkers

KF = "wkTEST"
T0, DAY, HOUR = 1_700_000_000.0, 86400.0, 3600.0
FAST = RetryPolicy(base=0.01, cap=0.02)
SKIP_HISTORY = HistoryPolicy(skip_history=True, max_age_seconds=48 * HOUR)
WAIT = 10.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Page:
    next_cursor: str
    has_more: bool
    msg_list: list[dict[str, Any]]


def item(msgid: str, send_time: float = T0, user: str = "wmU") -> dict[str, Any]:
    raw = {"msgid": msgid, "external_userid": user, "send_time": int(send_time), "origin": 3}
    return {**raw, "msgtype": "text", "text": {"content": msgid}}


class FakeSyncApi:
    """``sync_msg`` over per-account item lists; a cursor is an index into the list. ``script`` holds
    the outcomes of the next calls (an exception to raise, None to serve); ``hook(open_kfid, n)`` runs
    inside the account's n-th call. Concurrent calls are counted per account and in total."""

    def __init__(self, items: Iterable[dict[str, Any]] = (), page_size: int = 1000) -> None:
        self.items: dict[str, list[dict[str, Any]]] = defaultdict(list, {KF: list(items)})
        self.page_size, self.empty_pages = page_size, 0  # empty has_more pages are served first
        self.script: list[Exception | None] = []
        self.hook: Callable[[str, int], None] | None = None
        self.calls: list[tuple[str, str | None, str | None]] = []
        self.max_active: Counter[str] = Counter()
        self.max_total = 0
        self._active: Counter[str] = Counter()
        self._lock = threading.Lock()

    def sync_msg(self, open_kfid: str, cursor: str | None, token: str | None, limit: int = 1000) -> Page:
        with self._lock:
            self.calls.append((open_kfid, cursor, token))
            nth = len(self.tokens(open_kfid))
            outcome = self.script.pop(0) if self.script else None
            self._active[open_kfid] += 1
            self.max_active[open_kfid] = max(self.max_active[open_kfid], self._active[open_kfid])
            self.max_total = max(self.max_total, self._active.total())
        try:
            if self.hook is not None:
                self.hook(open_kfid, nth)
            if outcome is not None:
                raise outcome
            start = int(cursor or 0)
            if self.empty_pages:
                self.empty_pages -= 1
                return Page(str(start), True, [])
            items = self.items[open_kfid]
            chunk = items[start : start + min(limit, self.page_size)]
            return Page(str(start + len(chunk)), start + len(chunk) < len(items), chunk)
        finally:
            with self._lock:
                self._active[open_kfid] -= 1

    def tokens(self, open_kfid: str = KF) -> list[str | None]:
        return [token for kfid, _, token in self.calls if kfid == open_kfid]

    def cursors(self) -> list[str | None]:
        return [cursor for _, cursor, _ in self.calls]


class FlakyStore:
    """The JSON store behind a wrapper: the first ``fail[name]`` calls of a method (``"*"``: of any
    method) raise StoreUnavailable; with ``lose_answer`` such a call is made before it raises (its
    outcome is unknown to the caller). ``before[name]`` runs before each call of that method."""

    def __init__(self, inner: JsonFileStore) -> None:
        self.inner, self.fail, self.lose_answer = inner, Counter[str](), False
        self.before: dict[str, Callable[[], object]] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if name in self.before:
                self.before[name]()
            with self._lock:
                key = name if self.fail[name] > 0 else "*" if self.fail["*"] > 0 else None
                if key is not None:
                    self.fail[key] -= 1
            if key is None:
                return method(*args, **kwargs)
            if self.lose_answer:
                method(*args, **kwargs)
            raise StoreUnavailable(f"{name} failed")

        return call


class NoApi:
    """Neither the session state nor the welcome is asked for by what these tests pull."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected API call {name}")


class RecordingRouter(Router):
    """The real Router; ``routed`` lists what reached ``route``, in order."""

    routed: list[str]

    def route(self, items: Iterable[Item], *, recovered: bool = False) -> None:
        items = list(items)
        self.routed.extend(i.msgid for i in items)
        super().route(items, recovered=recovered)


class Harness:
    def __init__(self, api: FakeSyncApi, store: JsonFileStore, clock: Clock, media: Path, **kw: Any) -> None:
        self.turns: list[list[str]] = []
        self._finish_turns = kw.pop("finish_turns", True)
        self._lock = threading.Lock()
        self.accounts = KeyedWorkers("test-account", 4, clock=kw.pop("account_clock", time.monotonic))
        self.customers = KeyedWorkers("test-customer", 4)
        self.inflight = InFlight(store, "me", 30.0)
        takeover = Takeover(store, NoApi())
        self.router = RecordingRouter(
            inflight=self.inflight,
            takeover=takeover,
            events=EventHandler(NoApi(), takeover, Recalls(), None),
            ledger=BudgetLedger(),
            turns=TurnAssembler(self.customers, 0.0, self._on_turn),
            customers=self.customers,
            make_message=lambda i: WechatComKfMessage(i, None, media),
        )
        self.router.routed = self.routed = []
        store_of_puller = kw.pop("puller_store", store)
        history = kw.pop("history", SKIP_HISTORY)
        options = {"owner": "me", "lease_seconds": 30.0, "policy": FAST, "clock": clock}
        self.puller = Puller(
            api=api,
            store=store_of_puller,
            router=self.router,
            workers=self.accounts,
            history=history,
            **options,
        )
        assert not kw, kw

    def _on_turn(self, turn: Turn) -> None:
        with self._lock:
            self.turns.append(turn.msgids)
        if self._finish_turns:
            self.inflight.finish(turn.key[0], turn.msgids)

    @property
    def handled(self) -> list[str]:
        with self._lock:
            return [msgid for turn in self.turns for msgid in turn]

    def run(self, token: str | None = "tok") -> None:
        self.puller.schedule(KF, token)
        self.settle()

    def settle(self) -> None:
        """Nothing pulled, waiting to retry, queued or in flight."""
        assert self.accounts.wait_idle(WAIT) and self.customers.wait_idle(WAIT)
        assert self.inflight.wait_idle(WAIT)

    def close(self) -> None:
        self.puller.stop()
        self.accounts.shutdown(5)
        self.customers.shutdown(5)


def wait_until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def gate_first_call(api: FakeSyncApi) -> tuple[threading.Event, threading.Event]:
    """The account's first call sets ``entered``, then waits for ``release``."""
    entered, release = threading.Event(), threading.Event()

    def hook(open_kfid: str, nth: int) -> None:
        if nth == 1:
            entered.set()
            assert release.wait(WAIT)

    api.hook = hook
    return entered, release


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[JsonFileStore]:
    s = JsonFileStore(tmp_path / "state", clock=clock)
    yield s
    s.close()


@pytest.fixture
def harness(tmp_path: Path, store: JsonFileStore, clock: Clock) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(api: FakeSyncApi, **kw: Any) -> Harness:
        made.append(Harness(api, store, clock, tmp_path / "media", **kw))
        return made[-1]

    yield make
    for h in made:
        h.close()


# --- one job per account, coalescing, paging ----------------------------------------------------------


def test_pages_while_has_more_even_through_empty_pages(harness: Any, store: JsonFileStore) -> None:
    api = FakeSyncApi([item(f"m{n}") for n in range(25)], page_size=10)
    api.empty_pages = 2
    h = harness(api)
    h.run()
    assert h.handled == [f"m{n}" for n in range(25)]
    assert api.cursors() == [None, "0", "0", "10", "20"] and set(api.tokens()) == {"tok"}
    assert store.load_cursor(KF) == "25"
    assert h.puller.pulls_started == 1


def test_one_pull_per_account_at_a_time_while_accounts_pull_concurrently(harness: Any) -> None:
    accounts = ["wkA", "wkB", "wkC"]
    api = FakeSyncApi()
    for kfid in accounts:
        api.items[kfid] = [item(f"{kfid}-1", user=f"wm{kfid}")]
    together = threading.Barrier(len(accounts), timeout=WAIT)  # met only if all three pull at once
    all_in, release = threading.Event(), threading.Event()

    def hook(open_kfid: str, nth: int) -> None:
        if nth == 1:
            if together.wait() == 0:
                all_in.set()
            assert release.wait(WAIT)

    api.hook = hook
    h = harness(api)
    for kfid in accounts:
        h.puller.schedule(kfid, "t0")
    assert all_in.wait(WAIT)
    for n in range(1, 6):  # callbacks while every account is being pulled
        for kfid in accounts:
            h.puller.schedule(kfid, f"t{n}")
    release.set()
    h.settle()
    assert api.max_total == len(accounts)
    assert all(api.max_active[kfid] == 1 for kfid in accounts)
    assert {kfid: api.tokens(kfid) for kfid in accounts} == {kfid: ["t0", "t5"] for kfid in accounts}
    assert sorted(h.handled) == sorted(f"{kfid}-1" for kfid in accounts)


def test_callbacks_during_a_pull_coalesce_into_one_more_pull_with_the_newest_token(harness: Any) -> None:
    api = FakeSyncApi([item("m1")])
    entered, release = gate_first_call(api)
    h = harness(api)
    h.puller.schedule(KF, "t0")
    assert entered.wait(WAIT)
    for n in range(1, 11):
        h.puller.schedule(KF, f"t{n}")
    release.set()
    h.settle()
    assert api.tokens() == ["t0", "t10"]
    assert (h.puller.pulls_started, h.puller.schedules) == (2, 11)
    assert h.handled == ["m1"]


def test_schedule_does_no_store_io_and_a_callback_during_the_unlock_is_pulled(
    harness: Any, store: JsonFileStore
) -> None:
    slow = FlakyStore(store)
    unlocking, gate = threading.Event(), threading.Event()
    slow.before["unlock"] = lambda: (unlocking.set(), gate.wait(WAIT))
    api = FakeSyncApi([item("m1")])
    h = harness(api, puller_store=slow)
    h.puller.schedule(KF, "t0")
    assert unlocking.wait(WAIT)  # the job ended its pull and is unlocking the store
    scheduler = threading.Thread(target=h.puller.schedule, args=(KF, "t1"))
    scheduler.start()
    scheduler.join(WAIT / 2)
    assert not scheduler.is_alive()  # schedule() returned while the unlock still blocks
    gate.set()
    h.settle()
    assert api.tokens() == ["t0", "t1"]
    assert h.handled == ["m1"]


def test_an_expired_token_pulls_the_same_page_again_without_it(harness: Any) -> None:
    api = FakeSyncApi([item(f"m{n}") for n in range(6)], page_size=2)
    api.script = [None, KfSyncTokenInvalid("95007", errcode=95007)]
    h = harness(api)
    h.run("old")
    assert (api.cursors(), api.tokens()) == ([None, "2", "2", "4"], ["old", "old", None, None])
    assert h.handled == [f"m{n}" for n in range(6)]


def test_items_served_again_are_not_handed_on_twice(harness: Any, store: JsonFileStore) -> None:
    api = FakeSyncApi([item("m1"), item("m2")])
    h = harness(api)
    h.run()
    store.accept_page(KF, "0", [], [])  # WeCom serves the items again (a cursor lost in a crash)
    h.run()
    assert api.calls[-1] == (KF, "0", "tok")
    assert h.handled == ["m1", "m2"]


# --- what a pull answers ------------------------------------------------------------------------------


@pytest.mark.parametrize("waking_time", [T0, T0 - 600])  # T0 - 600: our clock is 10 min ahead
def test_first_start_skips_history_but_answers_the_waking_message(
    harness: Any, store: JsonFileStore, waking_time: float
) -> None:
    history = [item(f"h{n}", T0 - DAY + n) for n in range(50)]
    h = harness(FakeSyncApi([*history, item("m99", waking_time)], page_size=20))
    h.run()
    assert h.handled == ["m99"]
    assert store.accept_page(KF, None, history[:3], []) == []  # recorded as done: never handed on


def test_history_stays_skipped_when_the_first_pull_is_retried(harness: Any) -> None:
    history = [item(f"h{n}", T0 - DAY + n) for n in range(4)]
    api = FakeSyncApi([*history, item("m9")], page_size=2)
    api.script = [None, KfNetworkError("down")]  # the first start's second page fails once
    h = harness(api)
    h.run()
    assert h.handled == ["m9"]


def test_without_skip_history_the_first_start_answers_recent_history(harness: Any) -> None:
    h = harness(
        FakeSyncApi([item("m1", T0 - 5 * DAY), item("m2", T0 - HOUR)]),
        history=HistoryPolicy(False, 48 * HOUR),
    )
    h.run()
    assert h.handled == ["m2"]


def test_after_downtime_messages_younger_than_the_max_age_are_answered(
    harness: Any, store: JsonFileStore
) -> None:
    store.accept_page(KF, "1", [], [])  # pulled before the downtime
    api = FakeSyncApi([item("m0"), item("m1", T0 - 3 * HOUR), item("m2", T0 - HOUR), item("m3")])
    h = harness(api, history=HistoryPolicy(True, 2 * HOUR))
    h.run()
    assert h.handled == ["m2", "m3"]
    assert store.accept_page(KF, None, [item("m1")], []) == []


# --- failures and retries -----------------------------------------------------------------------------


def test_a_retryable_failure_is_retried_until_the_pull_succeeds_with_the_newest_token(
    harness: Any, store: JsonFileStore
) -> None:
    api = FakeSyncApi([item("m1")])
    api.script = [KfNetworkError("down")] * 14  # 13 in a row after the newer callback

    def callback_in_the_outage(open_kfid: str, nth: int) -> None:
        if nth == 2:
            thread = threading.Thread(target=h.puller.schedule, args=(KF, "t1"))
            thread.start()
            thread.join(WAIT)

    api.hook = callback_in_the_outage
    h = harness(api)
    h.run("t0")
    assert api.tokens() == ["t0", "t0"] + ["t1"] * 13
    assert h.handled == ["m1"]
    assert store.load_cursor(KF) == "1"


def test_a_non_retryable_failure_waits_for_the_next_callback(harness: Any) -> None:
    api = FakeSyncApi([item("m1")])
    api.script = [KfCredentialError("invalid secret", errcode=40001)]
    h = harness(api)
    h.run("t0")  # settled: no retry is waiting either
    assert api.tokens() == ["t0"] and h.handled == []
    h.run("t1")
    assert api.tokens() == ["t0", "t1"] and h.handled == ["m1"]


def test_a_token_older_than_ten_minutes_is_dropped(harness: Any, clock: Clock) -> None:
    api = FakeSyncApi([item("m1")])
    api.script = [KfNetworkError("down")]
    api.hook = lambda open_kfid, nth: setattr(clock, "now", clock.now + 601)
    h = harness(api)
    h.run("tok")
    assert api.tokens() == ["tok", None]
    assert h.handled == ["m1"]


@pytest.mark.parametrize(
    ("method", "failures", "lose_answer"),
    [
        ("*", 3, False),
        ("try_lock", 2, False),
        ("take_pull_request", 1, False),
        ("claim_pending", 2, False),
        ("load_cursor", 1, False),
        ("accept_page", 2, False),
        ("accept_page", 1, True),  # written, but the answer was lost
    ],
)
def test_an_unavailable_store_is_retried_as_a_delayed_job(
    harness: Any, store: JsonFileStore, method: str, failures: int, lose_answer: bool
) -> None:
    flaky = FlakyStore(store)
    flaky.fail[method] = failures
    flaky.lose_answer = lose_answer
    api = FakeSyncApi([item("m1"), item("m2")])
    # A write whose answer was lost is repeated where it failed, as the channel's ResilientStore does:
    # the repeated accept hands the same items back (a job-level retry would pull past them).
    puller_store: Any = ResilientStore(flaky, FAST) if lose_answer else flaky
    h = harness(api, puller_store=puller_store)
    h.run()
    assert h.handled == ["m1", "m2"]
    assert set(api.tokens()) == {"tok"}
    assert store.load_cursor(KF) == "2"
    assert store.pending(KF) == []


def test_stop_ends_retries_and_refuses_callbacks(harness: Any) -> None:
    api = FakeSyncApi([item("m1")])
    api.script = [KfNetworkError("down")]
    entered, release = gate_first_call(api)
    h = harness(api)
    h.puller.schedule(KF, "t0")
    assert entered.wait(WAIT)
    h.puller.stop()
    release.set()
    assert h.accounts.wait_idle(WAIT)  # the failure was not retried
    h.puller.schedule(KF, "t1")
    assert not h.accounts.busy()
    assert api.tokens() == ["t0"] and h.handled == []


# --- locks and pull requests across instances -------------------------------------------------------


def test_a_locked_account_leaves_a_pull_request_and_our_own_retry_follows(
    harness: Any, store: JsonFileStore
) -> None:
    assert store.try_lock(KF, "other", 30)
    account_clock = Clock(1000.0)
    api = FakeSyncApi([item("m1")])
    h = harness(api, account_clock=account_clock)
    h.puller.schedule(KF, "tok")
    wait_until(lambda: h.puller.pull_requests == 1 and h.accounts.waiting() == 1)
    assert store.take_pull_request(KF) == "tok"  # what the lock holder takes before it unlocks
    assert api.calls == []
    store.unlock(KF, "other")
    account_clock.now += LOCKED_RETRY_SECONDS
    h.accounts.wake()
    h.settle()
    assert api.tokens() == ["tok"]
    assert h.handled == ["m1"]


def test_the_lock_holder_takes_pull_requests_and_pulls_again_before_it_unlocks(
    harness: Any, store: JsonFileStore
) -> None:
    store.request_pull(KF, "stale")  # waiting when the lock is taken: covered by that pull
    api = FakeSyncApi([item("m1")])
    api.hook = lambda open_kfid, nth: store.request_pull(KF, "remote") if nth == 1 else None
    h = harness(api)
    h.run("fresh")
    assert api.tokens() == ["fresh", "remote"]
    assert store.take_pull_request(KF) is None
    assert store.try_lock(KF, "other", 30)  # unlocked at the end
    assert h.handled == ["m1"]


# --- the start, claims and sweeps ---------------------------------------------------------------------


def test_the_start_pulls_every_known_account_once_without_a_token(harness: Any, store: JsonFileStore) -> None:
    store.accept_page("wkA", "0", [], [])  # a cursor
    store.accept_page("wkB", None, [item("b1", user="wmB")], [])  # pending work only
    api = FakeSyncApi()
    api.items["wkA"] = [item("a1", user="wmA")]
    api.items["wkC"] = [item("c1", user="wmC")]  # never pulled before: waits for its callback
    h = harness(api)
    assert h.puller.pull_known_accounts() == 2
    h.settle()
    assert sorted(api.calls) == [("wkA", "0", None), ("wkB", None, None)]
    assert sorted(h.handled) == ["a1", "b1"]
    assert h.puller.schedules == 0


def test_pending_items_nobody_holds_are_routed_first_oldest_first(
    harness: Any, store: JsonFileStore, clock: Clock
) -> None:
    store.accept_page(KF, "2", [item("m1"), item("m2")], [])  # a previous run: unclaimed
    store.accept_page(KF, None, [item("m3")], [], "dead", 5)  # a dead instance's claim
    store.accept_page(KF, None, [item("m4")], [], "alive", 600)  # held by a live instance
    clock.now += 10  # the dead instance's lease is over
    api = FakeSyncApi([item("m1"), item("m2"), item("m5")])
    routed_at_pull: list[list[str]] = []
    h = harness(api)
    api.hook = lambda open_kfid, nth: routed_at_pull.append(list(h.routed))
    h.run()
    assert routed_at_pull == [["m1", "m2", "m3"]]
    assert h.handled == ["m1", "m2", "m3", "m5"]
    assert [raw["msgid"] for raw in store.pending(KF)] == ["m4"]


def test_sweep_claims_and_routes_without_pulling(harness: Any, store: JsonFileStore, clock: Clock) -> None:
    store.accept_page("wkA", "1", [item("a1", user="wmA")], [])
    store.accept_page("wkB", "1", [item("b1", user="wmB")], [], "dead", 5)
    store.accept_page("wkC", "1", [], [])  # nothing pending
    clock.now += 10
    api = FakeSyncApi()
    h = harness(api, finish_turns=False)
    h.puller.sweep()
    assert h.accounts.wait_idle(WAIT) and h.customers.wait_idle(WAIT)
    h.puller.sweep()  # its own items in flight are under a live claim: not claimed again
    assert h.accounts.wait_idle(WAIT) and h.customers.wait_idle(WAIT)
    assert api.calls == []
    assert sorted(h.handled) == ["a1", "b1"]
    assert sorted(h.routed) == ["a1", "b1"]
    assert store.claim_pending("wkA", "other", 30) == []  # ours while in flight


def test_a_sweep_holding_the_lock_does_not_lose_a_pull_request(harness: Any, store: JsonFileStore) -> None:
    store.accept_page(KF, "1", [item("m1")], [])  # pending: the sweep takes the account's lock
    store.request_pull(KF, "remote")  # another instance's callback, left for the lock holder
    api = FakeSyncApi([item("m1"), item("m2")])
    h = harness(api)
    h.puller.sweep()
    h.settle()
    pulled = api.tokens() == ["remote"] and h.handled == ["m1", "m2"]
    left = store.take_pull_request(KF) == "remote"  # or left for the requester's own retry
    assert pulled or left, (api.calls, h.handled)
