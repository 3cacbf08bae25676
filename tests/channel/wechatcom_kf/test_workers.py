"""KeyedWorkers: per-key order, cross-key concurrency, delays on an injected clock, coalescing,
backpressure, shutdown. Real threads; every wait is bounded by WAIT."""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest

from channel.wechatcom_kf.workers import KeyedWorkers

WAIT = 5.0  # the bound of every wait; a passing test never waits that long
_names = itertools.count()


class FakeClock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_pool(clock: FakeClock) -> Iterator[Callable[..., KeyedWorkers]]:
    pools: list[KeyedWorkers] = []

    def make(threads: int = 2, **kwargs: Any) -> KeyedWorkers:
        kwargs.setdefault("clock", clock)
        pool = KeyedWorkers(f"kwtest{next(_names)}", threads, **kwargs)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.shutdown(WAIT)


def pool_threads(pool: KeyedWorkers) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(pool.name + "-")]


def until(predicate: Callable[[], object], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.002)
    raise AssertionError(f"timed out waiting for {what}")


def blocker(pool: KeyedWorkers, key: str) -> threading.Event:
    """Occupy one worker with a job of ``key`` until the returned gate is set."""
    gate, started = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        gate.wait(WAIT)

    pool.submit(key, hold)
    assert started.wait(WAIT)
    return gate


def _park_token(thread: threading.Thread) -> object | None:
    """The lock a thread parked in Condition.wait sleeps on (a new one at every wait), else None."""
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is not None and frame.f_code is threading.Condition.wait.__code__:
        return frame.f_locals.get("waiter")
    return None


def test_jobs_of_one_key_run_one_at_a_time_in_order(make_pool: Callable[..., KeyedWorkers]) -> None:
    pool = make_pool(threads=4)
    lock = threading.Lock()
    running = dict.fromkeys("abc", 0)
    log: list[tuple[str, int, int]] = []  # key, job, jobs of that key running

    def job(key: str, n: int) -> None:
        with lock:
            running[key] += 1
            log.append((key, n, running[key]))
        time.sleep(0.001)  # gives an overlap a chance to show
        with lock:
            running[key] -= 1

    for n in range(30):
        for key in "abc":
            assert pool.submit(key, partial(job, key, n))
    assert pool.wait_idle(WAIT)
    assert max(concurrent for _, _, concurrent in log) == 1
    assert all([n for k, n, _ in log if k == key] == list(range(30)) for key in "abc")


def test_different_keys_run_at_once_on_at_most_threads_threads(
    make_pool: Callable[..., KeyedWorkers],
) -> None:
    pool = make_pool(threads=2)
    barrier = threading.Barrier(2, timeout=WAIT)
    lock = threading.Lock()
    running, most, met = [0], [0], []

    def job(key: int) -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        barrier.wait()  # passes only while another key's job runs too
        with lock:
            running[0] -= 1
            met.append(key)

    for key in range(6):
        pool.submit(key, partial(job, key))
    assert pool.wait_idle(WAIT)
    assert sorted(met) == list(range(6))
    assert most[0] == 2 and len(pool_threads(pool)) == 2


def test_delayed_job_waits_for_the_clock(make_pool: Callable[..., KeyedWorkers], clock: FakeClock) -> None:
    pool = make_pool(threads=1)
    ran = threading.Event()
    assert pool.submit("k", ran.set, delay=10)
    assert pool.busy() and pool.waiting() == 1
    assert not pool.wait_idle(0.05)
    clock.now += 9.5
    pool.wake()
    assert not ran.wait(0.05) and pool.busy()
    clock.now += 0.5
    pool.wake()
    assert ran.wait(WAIT)
    assert pool.wait_idle(WAIT) and not pool.busy() and pool.waiting() == 0


def test_job_that_became_due_first_runs_first(
    make_pool: Callable[..., KeyedWorkers], clock: FakeClock
) -> None:
    pool = make_pool(threads=1)
    order: list[str] = []
    pool.submit("k", lambda: order.append("due at +5"), delay=5)
    until(lambda: _park_token(pool_threads(pool)[0]), "the worker to sleep")
    pool.waiting()  # it holds the lock until it sleeps
    clock.now += 10
    pool.submit("k", lambda: order.append("due at +10"))
    assert pool.wait_idle(WAIT)
    assert order == ["due at +5", "due at +10"]


def test_no_timer_threads_and_delayed_jobs_run_in_due_order(
    make_pool: Callable[..., KeyedWorkers], clock: FakeClock
) -> None:
    before = set(threading.enumerate())
    pool = make_pool(threads=2)

    def only_pool_threads() -> bool:
        new = set(threading.enumerate()) - before
        return len(new) <= 2 and all(t.name.startswith(pool.name + "-") for t in new)

    ran: list[int] = []

    def delay(n: int) -> float:  # per key, a later submit is due earlier; 14 and 19 at once
        return max(20 - n, 6)

    for n in range(20):
        pool.submit(n % 5, partial(ran.append, n), delay=delay(n))
    assert only_pool_threads()
    clock.now += 20
    pool.wake()
    assert pool.wait_idle(WAIT)
    assert only_pool_threads() and sorted(ran) == list(range(20))
    for key in range(5):
        assert [n for n in ran if n % 5 == key] == sorted(range(key, 20, 5), key=lambda n: (delay(n), n))


def test_due_job_of_another_key_runs_while_the_only_thread_is_busy(
    make_pool: Callable[..., KeyedWorkers], clock: FakeClock
) -> None:
    pool = make_pool(threads=2)
    gate = blocker(pool, "a")  # the pool's first thread is busy with "a"
    ran = threading.Event()
    pool.submit("b", ran.set, delay=5)
    clock.now += 10
    pool.wake()
    assert ran.wait(WAIT), "key b waits for key a although a second thread is allowed"
    gate.set()


@pytest.mark.parametrize(
    ("second", "expected"), [(20.0, "first"), (10.0, "first"), (5.0, "second"), (0.0, "second")]
)
def test_coalesced_submit_merges_and_the_earlier_due_wins(
    make_pool: Callable[..., KeyedWorkers], clock: FakeClock, second: float, expected: str
) -> None:
    pool = make_pool(threads=1)
    ran: list[str] = []
    assert pool.submit("k", lambda: ran.append("first"), delay=10, coalesce=True)
    assert pool.submit("k", lambda: ran.append("second"), delay=second, coalesce=True)
    assert pool.waiting() <= 1
    clock.now += min(10.0, second)
    pool.wake()
    assert pool.wait_idle(WAIT)  # a replaced job no longer counts
    clock.now += 100
    pool.wake()
    assert pool.wait_idle(WAIT)
    assert ran == [expected]


def test_coalesced_submit_after_start_queues_exactly_one_more_run(
    make_pool: Callable[..., KeyedWorkers],
) -> None:
    pool = make_pool(threads=1)
    gate, started = threading.Event(), threading.Event()
    ran: list[str] = []

    def running() -> None:
        started.set()
        gate.wait(WAIT)
        ran.append("running")

    pool.submit("k", running, coalesce=True)
    assert started.wait(WAIT)
    for n in range(3):
        assert pool.submit("k", partial(ran.append, f"again{n}"), coalesce=True)
    pool.submit("k", lambda: ran.append("plain"))  # a plain job is never merged
    assert pool.waiting() == 2
    gate.set()
    assert pool.wait_idle(WAIT)
    assert ran == ["running", "again0", "plain"]


def test_cancel_drops_only_a_job_that_is_still_delayed(
    make_pool: Callable[..., KeyedWorkers], clock: FakeClock
) -> None:
    pool = make_pool(threads=1)
    ran: list[str] = []
    dropped = pool.submit("k", lambda: ran.append("dropped"), delay=10)
    kept = pool.submit("k", lambda: ran.append("kept"), delay=10)
    assert dropped and kept and pool.waiting() == 2
    assert pool.cancel(dropped) is True and pool.cancel(dropped) is False
    assert pool.waiting() == 1
    window = pool.submit("c", lambda: ran.append("window"), delay=5, coalesce=True)
    assert pool.submit("c", lambda: ran.append("merged"), delay=8, coalesce=True) is window
    assert window and pool.cancel(window)
    assert pool.submit("c", lambda: ran.append("new window"), delay=8, coalesce=True) is not window
    clock.now += 10
    pool.wake()
    assert pool.wait_idle(WAIT)
    assert sorted(ran) == ["kept", "new window"]
    assert pool.cancel(kept) is False  # it ran


def test_full_pool_blocks_submit_until_room(make_pool: Callable[..., KeyedWorkers]) -> None:
    pool = make_pool(threads=1, max_waiting=2)
    ran: list[str] = []
    gate = blocker(pool, "a")
    pool.submit("a", lambda: ran.append("1"))
    pool.submit("b", lambda: ran.append("2"))
    with pytest.raises(TimeoutError):
        pool.submit("c", lambda: ran.append("never"), timeout=0.05)
    returned = threading.Event()

    def submit_when_room() -> None:
        pool.submit("c", lambda: ran.append("3"), timeout=WAIT)
        returned.set()

    thread = threading.Thread(target=submit_when_room)
    thread.start()
    assert not returned.wait(0.05)
    assert pool.submit("d", lambda: ran.append("coalesced"), coalesce=True, timeout=0.05)
    gate.set()
    assert returned.wait(WAIT)
    thread.join(WAIT)
    assert pool.wait_idle(WAIT)
    assert sorted(ran) == ["1", "2", "3", "coalesced"]


def test_job_can_submit_to_its_own_full_pool(make_pool: Callable[..., KeyedWorkers]) -> None:
    pool = make_pool(threads=1, max_waiting=1)
    full = threading.Event()
    ran: list[str] = []

    def first() -> None:
        assert full.wait(WAIT)
        ran.append(f"A submitted: {bool(pool.submit('k', lambda: ran.append('C'), timeout=WAIT))}")

    pool.submit("k", first)
    pool.submit("k", lambda: ran.append("B"))  # the pool is full now
    full.set()
    assert pool.wait_idle(WAIT)
    assert ran == ["A submitted: True", "B", "C"]


def test_shutdown_drops_delayed_jobs_and_finishes_ready_ones(
    make_pool: Callable[..., KeyedWorkers], caplog: pytest.LogCaptureFixture
) -> None:
    pool = make_pool(threads=1, max_waiting=3)
    ran: list[str] = []
    gate = blocker(pool, "a")
    pool.submit("a", lambda: ran.append("a2"))
    pool.submit("b", lambda: ran.append("b"))
    pool.submit("c", lambda: ran.append("delayed"), delay=10)  # the pool is full now
    blocked: list[bool] = []
    thread = threading.Thread(target=lambda: blocked.append(bool(pool.submit("e", ran.clear, timeout=WAIT))))
    thread.start()
    with caplog.at_level(logging.INFO, logger="channel.wechatcom_kf.workers"):
        assert pool.shutdown(0.05) is False  # "a" still runs
    assert "dropped" in caplog.text
    thread.join(WAIT)
    assert blocked == [False]  # shutting down releases a blocked submitter
    assert not pool.submit("d", lambda: ran.append("after"))
    gate.set()
    assert pool.shutdown(WAIT) is True
    assert sorted(ran) == ["a2", "b"]
    assert not pool.busy() and pool.waiting() == 0
    assert not pool_threads(pool)


def test_failing_job_is_logged_and_the_worker_survives(
    make_pool: Callable[..., KeyedWorkers], caplog: pytest.LogCaptureFixture
) -> None:
    pool = make_pool(threads=1)
    ran = threading.Event()

    def broken() -> None:
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="channel.wechatcom_kf.workers"):
        pool.submit("k", broken)
        pool.submit("k", ran.set)
        assert ran.wait(WAIT)
        assert pool.wait_idle(WAIT)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info and errors[0].exc_info[0] is ValueError
    assert len(pool_threads(pool)) == 1


def test_new_job_wakes_the_idle_worker_while_another_thread_waits_idle(
    make_pool: Callable[..., KeyedWorkers],
) -> None:
    """Waiters of wait_idle share the pool's condition: a ready job must still wake the worker."""
    pool = make_pool(threads=1)
    pool.submit("late", lambda: None, delay=1000)
    worker = until(lambda: pool_threads(pool), "the worker")[0]
    first_park = until(lambda: _park_token(worker), "the worker to sleep")
    idle_waiter = threading.Thread(target=pool.wait_idle, args=(WAIT,))
    idle_waiter.start()
    until(lambda: _park_token(idle_waiter), "wait_idle to wait")
    pool.waiting()  # it holds the lock until it sleeps
    pool.submit("late2", lambda: None, delay=1000)  # the worker wakes and sleeps again, now second
    until(lambda: _park_token(worker) not in (None, first_park), "the worker to sleep again")
    pool.waiting()
    ran = threading.Event()
    pool.submit("now", ran.set)
    assert ran.wait(WAIT), "the ready job's wake-up went to the wait_idle caller"
    pool.shutdown(WAIT)
    idle_waiter.join(WAIT)
