"""Puller: one loop per account, coalescing, paging, 95007, first start, recovery, locks, retries.

The API side is an in-memory fake of ``KfApi.sync_msg`` (the HTTP path is covered by tests/e2e);
the store is the real JsonFileStore.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from channel.wechatcom_kf.errors import KfNetworkError, KfSyncTokenInvalid
from channel.wechatcom_kf.puller import Puller
from channel.wechatcom_kf.settings import load_kf_settings
from channel.wechatcom_kf.store import JsonFileStore

KF = "wkTEST"


@dataclass
class Page:
    next_cursor: str
    has_more: bool
    msg_list: list[dict[str, Any]]


def item(n: int, send_time: float | None = None, origin: int = 3) -> dict[str, Any]:
    return {
        "msgid": f"m{n}",
        "open_kfid": KF,
        "external_userid": "wmU",
        "send_time": int(time.time() if send_time is None else send_time),
        "origin": origin,
        "msgtype": "text",
        "text": {"content": str(n)},
    }


class FakeApi:
    """Serves ``items`` in pages of ``page_size``; cursors are indexes. Records every call."""

    def __init__(self, items: list[dict[str, Any]] | None = None, page_size: int = 1000) -> None:
        self.items = list(items or [])
        self.page_size = page_size
        self.calls: list[tuple[str | None, str | None]] = []
        self.gate: threading.Event | None = None  # when set, the first call waits for it
        self.failures: list[Exception] = []  # raised by the next calls, in order
        self.empty_pages_first = 0  # has_more=1 pages with no items before the real ones
        self.lock = threading.Lock()

    def sync_msg(self, open_kfid: str, cursor: str | None, token: str | None, limit: int = 1000) -> Page:
        with self.lock:
            self.calls.append((cursor, token))
            first = len(self.calls) == 1
            failure = self.failures.pop(0) if self.failures else None
        if first and self.gate is not None:
            assert self.gate.wait(5)
        if failure is not None:
            raise failure
        start = int(cursor or 0)
        if self.empty_pages_first:
            self.empty_pages_first -= 1
            return Page(str(start), True, [])
        chunk = self.items[start : start + self.page_size]
        end = start + len(chunk)
        return Page(str(end), end < len(self.items), chunk)


def settings(**overrides: Any):
    values = {"wechatcom_kf_max_message_age_hours": 48.0, **overrides}
    return load_kf_settings(values.get, environ={})


class Harness:
    def __init__(self, tmp_path, api: FakeApi, store: JsonFileStore | None = None, **kw: Any) -> None:
        self.store = store or JsonFileStore(tmp_path / "state")
        self.api = api
        self.handled: list[str] = []
        self.puller = Puller(
            api,
            self.store,
            self._handle,
            kw.pop("settings", settings()),
            kw.pop("owner", "me"),
            backoff_base=0.01,
            **kw,
        )

    def _handle(self, items: list[dict[str, Any]]) -> None:
        self.handled += [i["msgid"] for i in items]

    def run(self, token: str = "tok") -> None:
        self.puller.schedule(KF, token)
        assert self.puller.wait_idle(10)


def test_pages_while_has_more_even_through_empty_pages(tmp_path):
    api = FakeApi([item(n) for n in range(25)], page_size=10)
    api.empty_pages_first = 2
    h = Harness(tmp_path, api)
    h.run()
    assert h.handled == [f"m{n}" for n in range(25)]
    assert len(api.calls) == 5  # 2 empty + 3 real pages
    assert h.store.load_cursor(KF) == "25"


def test_callbacks_during_a_pull_coalesce_into_one_more_pull(tmp_path):
    api = FakeApi([item(1)])
    api.gate = threading.Event()
    h = Harness(tmp_path, api)
    h.puller.schedule(KF, "t0")
    for n in range(10):
        h.puller.schedule(KF, f"t{n + 1}")
    api.gate.set()
    assert h.puller.wait_idle(10)
    assert [token for _, token in api.calls] == ["t0", "t10"]  # newest token wins
    assert h.puller.pulls_started == 2
    assert h.handled == ["m1"]


def test_repeated_pulls_do_not_hand_on_an_item_twice(tmp_path):
    api = FakeApi([item(1), item(2)])
    h = Harness(tmp_path, api)
    h.run()
    api.calls.clear()
    # WeCom may serve items again (a cursor lost in a crash): accept_page drops known msgids.
    h.store.accept_page(KF, None, [], [])
    h.run()
    assert h.handled == ["m1", "m2"]


def test_an_expired_token_is_retried_once_without_it(tmp_path):
    api = FakeApi([item(1)])
    api.failures = [KfSyncTokenInvalid("95007", errcode=95007)]
    h = Harness(tmp_path, api)
    h.run("old")
    assert api.calls == [(None, "old"), (None, None)]
    assert h.handled == ["m1"]


def test_errors_are_retried_with_backoff_and_the_cursor_waits(tmp_path):
    api = FakeApi([item(1)])
    api.failures = [KfNetworkError("down"), KfNetworkError("down")]
    h = Harness(tmp_path, api)
    h.run()
    assert len(api.calls) == 3
    assert h.handled == ["m1"]
    assert h.store.load_cursor(KF) == "1"


def test_first_start_skips_history_but_answers_the_waking_message(tmp_path):
    now = time.time()
    history = [item(n, now - 86400 + n) for n in range(50)]
    api = FakeApi([*history, item(99, now)])
    h = Harness(tmp_path, api)
    h.run()
    assert h.handled == ["m99"]
    # The skipped history is recorded as done: served again, it is not handed on.
    h.store.accept_page(KF, None, [], [])
    assert h.store.accept_page(KF, "51", history[:3], []) == []


def test_first_start_answers_a_clock_skewed_waking_message(tmp_path):
    now = time.time()
    api = FakeApi([item(1, now - 3600), item(2, now - 600)])  # our clock runs 10 min ahead
    h = Harness(tmp_path, api)
    h.run()
    assert h.handled == ["m2"]


def test_without_skip_history_the_first_start_answers_recent_history(tmp_path):
    now = time.time()
    api = FakeApi([item(1, now - 5 * 86400), item(2, now - 3600)])
    h = Harness(tmp_path, api, settings=settings(wechatcom_kf_skip_history_on_first_start=False))
    h.run()
    assert h.handled == ["m2"]


def test_after_the_first_pull_only_too_old_items_are_skipped(tmp_path):
    now = time.time()
    api = FakeApi([item(1, now)])
    h = Harness(tmp_path, api, settings=settings(wechatcom_kf_max_message_age_hours=2.0))
    h.run()
    api.items += [item(2, now - 3 * 3600), item(3, now - 3600)]
    h.run()
    assert h.handled == ["m1", "m3"]


def test_pending_items_of_a_previous_run_are_dispatched_first(tmp_path):
    store = JsonFileStore(tmp_path / "state")
    store.accept_page(KF, "1", [item(1)], [])
    api = FakeApi([item(1), item(2)])
    h = Harness(tmp_path, api, store=store)
    h.run()
    assert h.handled == ["m1", "m2"]  # m1 re-dispatched once, before the pull; not duplicated


def test_an_account_locked_by_another_instance_is_not_pulled(tmp_path):
    store = JsonFileStore(tmp_path / "state")
    assert store.try_lock(KF, "other", 30)
    api = FakeApi([item(1)])
    h = Harness(tmp_path, api, store=store)
    h.puller.schedule(KF, "tok")
    time.sleep(0.2)
    assert api.calls == []
    store.unlock(KF, "other")
    assert h.puller.wait_idle(10)  # the timer retries once the lock is free
    assert h.handled == ["m1"]


def test_stop_cancels_retries_and_refuses_new_callbacks(tmp_path):
    api = FakeApi([item(1)])
    api.failures = [KfNetworkError("down")] * 3
    h = Harness(tmp_path, api)
    h.puller._backoff_base = 5.0  # a long wait that stop() must cut short
    h.puller.schedule(KF, "tok")
    deadline = time.monotonic() + 5
    while not api.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert h.puller.stop(5)
    h.puller.schedule(KF, "tok2")
    assert len(api.calls) == 1
    assert h.handled == []


class SlowUnlockStore(JsonFileStore):
    """A store whose unlock waits for a gate: stands for a slow shared store (Redis over a network)."""

    def __init__(self, directory: Any) -> None:
        super().__init__(directory)
        self.unlocking = threading.Event()
        self.gate = threading.Event()

    def unlock(self, open_kfid: str, owner: str) -> None:
        self.unlocking.set()
        assert self.gate.wait(5)
        super().unlock(open_kfid, owner)


def test_schedule_does_not_wait_for_store_io_and_a_callback_during_unlock_is_pulled(tmp_path):
    store = SlowUnlockStore(tmp_path / "state")
    api = FakeApi([item(1)])
    h = Harness(tmp_path, api, store=store)
    h.puller.schedule(KF, "t0")
    assert store.unlocking.wait(5)  # the job ends its pull and is unlocking the store
    scheduler = threading.Thread(target=h.puller.schedule, args=(KF, "t1"))
    scheduler.start()
    scheduler.join(5)
    assert not scheduler.is_alive()  # schedule() returned while the unlock still blocks
    store.gate.set()
    assert h.puller.wait_idle(10)
    assert [token for _, token in api.calls] == ["t0", "t1"]
    assert h.handled == ["m1"]
    store.close()


# --- claims, recovery and cross-instance pull requests ------------------------------------------------


class Clock:
    """The store's clock, moved by hand: leases expire exactly when a test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_accepted_items_are_claimed_by_the_puller_until_the_lease_ends(tmp_path):
    clock = Clock()
    store = JsonFileStore(tmp_path / "state", clock=clock)
    h = Harness(tmp_path, FakeApi([item(1), item(2)]), store=store, lease_seconds=30.0)
    h.run()
    assert h.handled == ["m1", "m2"]
    assert store.claim_pending(KF, "other", 30) == []  # ours, and being handled
    clock.now += 31
    assert [i["msgid"] for i in store.claim_pending(KF, "other", 30)] == ["m1", "m2"]


def test_renewing_keeps_only_the_items_in_flight_claimed(tmp_path):
    clock = Clock()
    store = JsonFileStore(tmp_path / "state", clock=clock)
    inflight = {"m1"}
    h = Harness(
        tmp_path, FakeApi([item(1), item(2)]), store=store, lease_seconds=30.0, inflight=lambda: inflight
    )
    h.run()
    clock.now += 20
    assert h.puller.renew_inflight() == 1
    clock.now += 20  # m2's lease ended; m1's was extended
    assert [i["msgid"] for i in store.claim_pending(KF, "other", 30)] == ["m2"]


def test_recover_dispatches_unclaimed_and_expired_items_but_not_live_claims(tmp_path):
    clock = Clock()
    store = JsonFileStore(tmp_path / "state", clock=clock)
    store.accept_page(KF, "1", [item(1)], [])  # a previous run of this instance: unclaimed
    store.accept_page(
        "wkOTHER", "1", [{**item(2), "open_kfid": "wkOTHER"}], [], owner="dead", lease_seconds=5
    )
    store.accept_page(KF, "2", [item(3)], [], owner="alive", lease_seconds=60)
    clock.now += 10  # the dead instance's lease is over, the live one's is not
    h = Harness(tmp_path, FakeApi(), store=store)
    assert h.puller.recover() == 2
    assert sorted(h.handled) == ["m1", "m2"]
    assert h.puller.recover() == 0  # now ours, under a live lease: never dispatched twice


def test_the_maintenance_thread_takes_over_a_dead_instances_work(tmp_path):
    store = JsonFileStore(tmp_path / "state")
    store.accept_page(KF, "1", [item(1), item(2)], [], owner="dead", lease_seconds=0.2)
    h = Harness(tmp_path, FakeApi(), store=store, lease_seconds=0.6)
    h.puller.start_maintenance()
    deadline = time.monotonic() + 10
    while len(h.handled) < 2 and time.monotonic() < deadline:  # bounded poll: the sweep runs each 0.3 s
        time.sleep(0.02)
    assert h.handled == ["m1", "m2"]
    assert h.puller.stop(5)
    assert h.handled == ["m1", "m2"]  # swept once: the claim is ours now


def test_a_locked_account_leaves_a_pull_request_for_the_lock_holder(tmp_path):
    store = JsonFileStore(tmp_path / "state")
    assert store.try_lock(KF, "other", 30)
    api = FakeApi([item(1)])
    h = Harness(tmp_path, api, store=store)
    h.puller.schedule(KF, "tok")
    deadline = time.monotonic() + 5
    while h.puller.pull_requests == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.take_pull_request(KF) == "tok"  # what the other instance sees before unlocking
    assert api.calls == []
    store.unlock(KF, "other")
    assert h.puller.wait_idle(10)
    assert h.handled == ["m1"]


def test_the_lock_holder_pulls_again_for_another_instances_request(tmp_path):
    store = JsonFileStore(tmp_path / "state")
    api = FakeApi([item(1)])
    api.gate = threading.Event()
    h = Harness(tmp_path, api, store=store)
    h.puller.schedule(KF, "t0")
    deadline = time.monotonic() + 5
    while not api.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    store.request_pull(KF, "remote")  # another instance's callback, during our pull
    api.gate.set()
    assert h.puller.wait_idle(10)
    assert [token for _, token in api.calls] == ["t0", "remote"]
    assert store.take_pull_request(KF) is None
    assert h.handled == ["m1"]


def test_a_request_waiting_when_the_lock_is_taken_is_covered_by_that_pull(tmp_path):
    store = JsonFileStore(tmp_path / "state")
    store.request_pull(KF, "stale")
    api = FakeApi([item(1)])
    h = Harness(tmp_path, api, store=store)
    h.run("fresh")
    assert [token for _, token in api.calls] == ["fresh"]
    assert store.take_pull_request(KF) is None
