"""InFlight: every accepted item is taken once and finished once; claims renewed while in flight.

The store is the real JsonFileStore with an injected clock; ``Wrapped`` puts a hook in front of one
of its methods where a test needs to block or fail a call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from channel.wechatcom_kf.inbound.inflight import RENEW_BATCH, InFlight
from channel.wechatcom_kf.store import JsonFileStore, StoreUnavailable

KF = "wkIF"
ME = "me"
LEASE = 30.0
WAIT = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Wrapped:
    """The JSON store with ``hooks[name]`` run before each call of that method (it may raise)."""

    def __init__(self, inner: JsonFileStore) -> None:
        self.inner = inner
        self.hooks: dict[str, Callable[..., None]] = {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def call(*args: Any) -> Any:
            self.calls.append((name, args))
            if name in self.hooks:
                self.hooks[name](*args)
            return method(*args)

        return call


def raw(msgid: str) -> dict[str, Any]:
    return {
        "msgid": msgid,
        "origin": 3,
        "external_userid": "wmU",
        "msgtype": "text",
        "text": {"content": "x"},
    }


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[JsonFileStore]:
    s = JsonFileStore(tmp_path, clock=clock)
    yield s
    s.close()


def accept(store: JsonFileStore, *msgids: str, owner: str = ME, account: str = KF) -> None:
    store.accept_page(account, None, [raw(m) for m in msgids], [], owner, LEASE)


def test_an_item_is_taken_once(store: JsonFileStore) -> None:
    inflight = InFlight(store, ME, LEASE)
    assert inflight.take(KF, "m1")
    assert not inflight.take(KF, "m1")
    assert inflight.take(KF, "m2")
    assert inflight.count() == 2


def test_finish_makes_it_done_in_the_store_and_it_is_never_taken_again(store: JsonFileStore) -> None:
    accept(store, "m1", "m2")
    inflight = InFlight(store, ME, LEASE)
    assert inflight.take(KF, "m1")
    inflight.finish(KF, ["m1"])
    assert inflight.count() == 0
    assert [i["msgid"] for i in store.pending(KF)] == ["m2"]
    assert store.accept_page(KF, None, [raw("m1")], [], ME, LEASE) == []  # done: pulled again, dropped
    assert not inflight.take(KF, "m1")  # finished a moment ago


def test_a_copy_read_from_the_store_before_the_finish_is_skipped_after_it(store: JsonFileStore) -> None:
    accept(store, "m1", owner="")
    inflight = InFlight(store, ME, LEASE)
    assert inflight.take(KF, "m1")
    stale = store.claim_pending(KF, ME, LEASE)  # a sweep reads the item while it is being answered
    assert [i["msgid"] for i in stale] == ["m1"]
    inflight.finish(KF, ["m1"])
    assert not inflight.take(KF, stale[0]["msgid"])


def test_an_item_being_finished_cannot_be_taken(store: JsonFileStore) -> None:
    accept(store, "m1")
    wrapped = Wrapped(store)
    entered, release = threading.Event(), threading.Event()

    def slow_finish(open_kfid: str, msgid: str) -> None:
        entered.set()
        assert release.wait(WAIT)

    wrapped.hooks["finish"] = slow_finish
    inflight = InFlight(wrapped, ME, LEASE)  # type: ignore[arg-type]
    assert inflight.take(KF, "m1")
    finisher = threading.Thread(target=inflight.finish, args=(KF, ["m1"]))
    finisher.start()
    assert entered.wait(WAIT)
    assert not inflight.take(KF, "m1")  # the store write is under way: still in flight
    release.set()
    finisher.join(WAIT)
    assert not finisher.is_alive()
    assert not inflight.take(KF, "m1")
    assert store.pending(KF) == []


def test_a_finish_the_store_cannot_record_leaves_the_item_pending(
    store: JsonFileStore, caplog: pytest.LogCaptureFixture
) -> None:
    accept(store, "m1")
    wrapped = Wrapped(store)

    def down(*args: Any) -> None:
        raise StoreUnavailable("stopping")

    wrapped.hooks["finish"] = down
    inflight = InFlight(wrapped, ME, LEASE)  # type: ignore[arg-type]
    inflight.take(KF, "m1")
    inflight.finish(KF, ["m1"])
    assert inflight.count() == 0
    assert not inflight.take(KF, "m1")  # not handled twice in this run
    assert [i["msgid"] for i in store.pending(KF)] == ["m1"]  # the next start handles it
    assert any("stays pending" in r.getMessage() for r in caplog.records)


def test_renewing_keeps_only_the_items_in_flight_claimed(store: JsonFileStore, clock: Clock) -> None:
    accept(store, "m1", "m2", "m3")
    inflight = InFlight(store, ME, LEASE)
    inflight.take(KF, "m1")
    inflight.take(KF, "m3")
    inflight.finish(KF, ["m3"])
    clock.now += 20
    assert inflight.renew() == 1
    clock.now += 20  # m2's lease ended; m1's was extended
    assert [i["msgid"] for i in store.claim_pending(KF, "other", LEASE)] == ["m2"]
    clock.now += LEASE - 1  # m1's extended lease ended too; m2 is still "other"'s
    assert [i["msgid"] for i in store.claim_pending(KF, "third", LEASE)] == ["m1"]


def test_renewing_goes_by_account_in_bounded_batches(store: JsonFileStore) -> None:
    wrapped = Wrapped(store)
    inflight = InFlight(wrapped, ME, LEASE)  # type: ignore[arg-type]
    for n in range(2 * RENEW_BATCH + 1):
        inflight.take(KF, f"a{n}")
    inflight.take("wkOTHER", "b1")
    assert inflight.renew() == 2 * RENEW_BATCH + 2
    renewals = [args for name, args in wrapped.calls if name == "renew_claims"]
    assert sorted((kfid, len(msgids)) for kfid, _, msgids, _ in renewals) == [
        (KF, 1),
        (KF, RENEW_BATCH),
        (KF, RENEW_BATCH),
        ("wkOTHER", 1),
    ]
    assert all(owner == ME and lease == LEASE for _, owner, _, lease in renewals)


def test_nothing_to_renew_calls_nothing(store: JsonFileStore) -> None:
    wrapped = Wrapped(store)
    assert InFlight(wrapped, ME, LEASE).renew() == 0  # type: ignore[arg-type]
    assert wrapped.calls == []


def test_wait_idle_returns_once_everything_is_finished(store: JsonFileStore) -> None:
    inflight = InFlight(store, ME, LEASE)
    assert inflight.wait_idle(0)
    inflight.take(KF, "m1")
    inflight.take(KF, "m2")
    assert not inflight.wait_idle(0)
    finisher = threading.Thread(target=inflight.finish, args=(KF, ["m1", "m2"]))
    finisher.start()
    assert inflight.wait_idle(WAIT)
    finisher.join(WAIT)
    assert inflight.count() == 0


def test_concurrent_takes_of_one_item_win_once(store: JsonFileStore) -> None:
    inflight = InFlight(store, ME, LEASE)
    start = threading.Barrier(8, timeout=WAIT)
    wins: list[bool] = []
    lock = threading.Lock()

    def take() -> None:
        start.wait()
        won = inflight.take(KF, "m1")
        with lock:
            wins.append(won)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert sorted(wins) == [False] * 7 + [True]
