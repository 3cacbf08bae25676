import threading
import time

import pytest

from channel.dispatcher import DispatcherStopped, SessionDispatcher


class Recorder:
    """A handler that records start order per session and the peak of concurrent calls."""

    def __init__(self, sleep=0.0, gate=None):
        self.sleep = sleep
        self.gate = gate
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.done = []
        self.all_done = threading.Event()
        self.expected = None

    def __call__(self, item):
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        if self.gate is not None:
            assert self.gate.wait(10)
        time.sleep(self.sleep)
        with self.lock:
            self.active -= 1
            self.done.append(item)
            if self.expected is not None and len(self.done) == self.expected:
                self.all_done.set()


def wait_running(dispatcher: SessionDispatcher, count: int) -> None:
    """Polls (bounded) until `count` items are being handled."""
    deadline = time.monotonic() + 5
    while dispatcher.stats()["running"] < count and time.monotonic() < deadline:
        time.sleep(0.01)


def test_order_per_session_completion_and_peak_concurrency():
    rec = Recorder(sleep=0.2)
    rec.expected = 100 * 3
    dispatcher = SessionDispatcher(rec, concurrency_in_session=1, max_workers=64)
    for n in range(3):
        for s in range(100):
            dispatcher.submit(f"s{s}", (f"s{s}", n))
    assert rec.all_done.wait(30)
    assert dispatcher.stop(5)
    assert len(rec.done) == 300
    for s in range(100):
        assert [n for sid, n in rec.done if sid == f"s{s}"] == [0, 1, 2]
    assert rec.peak >= 32  # CoW's fixed pool would cap this at 8


def test_one_session_never_runs_two_items_at_once():
    rec = Recorder(sleep=0.01)
    rec.expected = 20
    dispatcher = SessionDispatcher(rec, concurrency_in_session=1, max_workers=8)
    for n in range(20):
        dispatcher.submit("only", ("only", n))
    assert rec.all_done.wait(10)
    dispatcher.stop(5)
    assert rec.peak == 1
    assert [n for _, n in rec.done] == list(range(20))


def test_concurrency_in_session_allows_parallel_items():
    gate = threading.Event()
    rec = Recorder(gate=gate)
    rec.expected = 3
    dispatcher = SessionDispatcher(rec, concurrency_in_session=3, max_workers=8)
    for n in range(3):
        dispatcher.submit("s", ("s", n))
    wait_running(dispatcher, 3)
    assert dispatcher.stats()["running"] == 3
    gate.set()
    assert rec.all_done.wait(5)
    dispatcher.stop(5)


def test_cancel_session_drops_only_queued_items():
    gate = threading.Event()
    rec = Recorder(gate=gate)
    dispatcher = SessionDispatcher(rec, max_workers=4)
    for n in range(5):
        dispatcher.submit("a", ("a", n))
    dispatcher.submit("b", ("b", 0))
    wait_running(dispatcher, 2)
    assert dispatcher.cancel_session("a") == 4  # item 0 already started
    gate.set()
    assert dispatcher.stop(5)
    assert sorted(rec.done) == [("a", 0), ("b", 0)]


def test_submit_blocks_when_full_backpressure():
    gate = threading.Event()
    rec = Recorder(gate=gate)
    dispatcher = SessionDispatcher(rec, max_workers=1, max_pending=2)
    dispatcher.submit("a", ("a", 0))
    wait_running(dispatcher, 1)
    dispatcher.submit("a", ("a", 1))
    dispatcher.submit("b", ("b", 0))
    with pytest.raises(TimeoutError):
        dispatcher.submit("c", ("c", 0), timeout=0.2)
    gate.set()
    dispatcher.submit("c", ("c", 0), timeout=5)  # space frees up as items start
    assert dispatcher.stop(5)
    assert len(rec.done) == 4


def test_stop_drains_then_refuses_new_items():
    rec = Recorder(sleep=0.05)
    dispatcher = SessionDispatcher(rec, max_workers=2)
    for n in range(6):
        dispatcher.submit(f"s{n % 3}", (f"s{n % 3}", n))
    assert dispatcher.stop(10) is True
    assert len(rec.done) == 6
    with pytest.raises(DispatcherStopped):
        dispatcher.submit("s", ("s", 99))


def test_stop_abandons_queued_work_after_timeout():
    gate = threading.Event()
    rec = Recorder(gate=gate)
    dispatcher = SessionDispatcher(rec, max_workers=1)
    for n in range(3):
        dispatcher.submit("s", ("s", n))
    assert dispatcher.stop(0.2) is False
    gate.set()
    for worker in dispatcher._workers:
        worker.join(5)
    assert [n for _, n in rec.done] == [0]  # only the one in flight ran


def test_a_failing_handler_does_not_stop_the_session(caplog):
    seen = []
    done = threading.Event()

    def handler(item):
        seen.append(item)
        if item == 0:
            raise RuntimeError("boom")
        done.set()

    dispatcher = SessionDispatcher(handler, max_workers=2)
    dispatcher.submit("s", 0)
    dispatcher.submit("s", 1)
    assert done.wait(5)
    dispatcher.stop(5)
    assert seen == [0, 1]
    assert any("handler failed for session s" in r.getMessage() for r in caplog.records)


def test_finished_sessions_and_items_are_not_kept():
    import gc
    import weakref

    class Item:
        pass

    done = threading.Event()
    handled: list[weakref.ref] = []

    def handler(item):
        handled.append(weakref.ref(item))
        if len(handled) == 200:
            done.set()

    dispatcher = SessionDispatcher(handler, max_workers=4)
    try:
        for n in range(200):
            dispatcher.submit(f"s{n}", Item())
        assert done.wait(10)
        deadline = time.monotonic() + 5
        while dispatcher.stats()["running"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert dispatcher.stats()["sessions"] == 0
        # Idle workers hold no reference to the last item they handled (bounded wait: a worker
        # drops it just after leaving the lock).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            gc.collect()
            alive = [ref for ref in handled if ref() is not None]
            if not alive:
                break
            time.sleep(0.01)
        assert alive == []
    finally:
        dispatcher.stop(5)
