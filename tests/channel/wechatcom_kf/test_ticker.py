"""Ticker: periodic tasks driven by an injected clock (run_due) and by its own thread."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable

import pytest

from channel.wechatcom_kf.ticker import Ticker

WAIT = 5.0
_names = itertools.count()


class FakeClock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def unique_name() -> str:
    return f"ticker-test-{next(_names)}"


def alive(name: str) -> bool:
    return any(t.name == name for t in threading.enumerate())


def counter() -> tuple[list[int], Callable[[], None]]:
    runs: list[int] = []
    return runs, lambda: runs.append(len(runs))


def test_task_runs_every_interval_the_first_time_one_interval_later() -> None:
    clock = FakeClock()
    ticker = Ticker(clock=clock)
    runs, task = counter()
    ticker.add("prune", 10.0, task)
    assert ticker.run_due(1000.0) == []
    assert ticker.run_due(1009.99) == []
    assert ticker.run_due(1010.0) == ["prune"]
    assert ticker.run_due(1015.0) == []
    assert ticker.run_due(1020.0) == ["prune"]
    assert len(runs) == 2


def test_run_due_defaults_to_the_clock_and_each_task_keeps_its_interval() -> None:
    clock = FakeClock()
    ticker = Ticker(clock=clock)
    ticker.add("a", 10.0, lambda: None)
    ticker.add("b", 25.0, lambda: None)
    seen: list[list[str]] = []
    for step in range(1, 7):
        clock.now = 1000.0 + 5 * step
        seen.append(ticker.run_due())
    assert seen == [[], ["a"], [], ["a"], ["b"], ["a"]]


def test_a_late_run_counts_the_next_interval_from_when_it_ran() -> None:
    ticker = Ticker(clock=FakeClock())
    ticker.add("a", 10.0, lambda: None)
    assert ticker.run_due(1035.0) == ["a"]  # one run, not three to catch up
    assert ticker.run_due(1044.0) == []
    assert ticker.run_due(1045.0) == ["a"]


def test_a_raising_task_is_logged_and_runs_again_at_its_next_tick(caplog: pytest.LogCaptureFixture) -> None:
    ticker = Ticker(clock=FakeClock())
    calls: list[str] = []

    def broken() -> None:
        calls.append("broken")
        raise RuntimeError("store down")

    ticker.add("broken", 10.0, broken)
    ticker.add("fine", 10.0, lambda: calls.append("fine"))
    with caplog.at_level(logging.ERROR, logger="channel.wechatcom_kf.ticker"):
        assert ticker.run_due(1010.0) == ["broken", "fine"]
        assert ticker.run_due(1015.0) == []
        assert ticker.run_due(1020.0) == ["broken", "fine"]
    assert calls == ["broken", "fine", "broken", "fine"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and all("broken" in r.getMessage() for r in errors)
    assert all(r.exc_info and r.exc_info[0] is RuntimeError for r in errors)


def test_nothing_runs_after_stop() -> None:
    ticker = Ticker(clock=FakeClock())
    runs, task = counter()
    ticker.add("a", 10.0, task)
    ticker.stop()
    assert ticker.run_due(2000.0) == [] and runs == []


def test_the_thread_runs_tasks_until_stopped() -> None:
    name = unique_name()
    ticker = Ticker(name=name)  # the real clock
    enough = threading.Event()
    runs: list[int] = []

    def task() -> None:
        runs.append(1)
        if len(runs) >= 3:
            enough.set()

    ticker.add("tick", 0.01, task)
    ticker.start()
    ticker.start()  # a second start starts no second thread
    try:
        assert [t.name for t in threading.enumerate()].count(name) == 1
        assert enough.wait(WAIT)
    finally:
        ticker.stop(WAIT)
    assert not alive(name)
    count = len(runs)
    assert ticker.run_due() == [] and len(runs) == count


def test_a_raising_task_does_not_end_the_thread(caplog: pytest.LogCaptureFixture) -> None:
    name = unique_name()
    ticker = Ticker(name=name)
    enough = threading.Event()
    runs: list[int] = []

    def task() -> None:
        runs.append(1)
        if len(runs) >= 3:
            enough.set()
        raise ValueError("every time")

    ticker.add("flaky", 0.01, task)
    with caplog.at_level(logging.ERROR, logger="channel.wechatcom_kf.ticker"):
        ticker.start()
        try:
            assert enough.wait(WAIT)
        finally:
            ticker.stop(WAIT)
    assert not alive(name)


def test_start_without_tasks_starts_no_thread() -> None:
    name = unique_name()
    ticker = Ticker(name=name)
    ticker.start()
    assert not alive(name)
    ticker.stop(WAIT)


def test_the_first_tick_is_one_interval_after_start() -> None:
    clock = FakeClock()
    name = unique_name()
    ticker = Ticker(name=name, clock=clock)
    ran = threading.Event()
    ticker.add("renew", 10.0, ran.set)  # added at 1000
    clock.now = 1100.0
    ticker.start()  # started at 1100: the first tick is at 1110
    try:
        assert not ran.wait(0.2), "the task ran at start, not one interval after it"
        assert ticker.run_due(1109.0) == []
        assert ticker.run_due(1110.0) == ["renew"]
    finally:
        ticker.stop(WAIT)
    assert not alive(name)
