"""OncePerKey and OutageLog: the first occurrence at its level, the rest quiet."""

from __future__ import annotations

import logging
import threading

import pytest

from channel.wechatcom_kf.oncelog import MAX_KEYS, OncePerKey, OutageLog

WAIT = 5.0
LOGGER = "tests.oncelog"


def test_first_is_true_once_per_key() -> None:
    once = OncePerKey()
    assert once.first("a") and once.first(("kf", 40014)) and once.first(7)
    assert not once.first("a") and not once.first(("kf", 40014)) and not once.first(7)
    assert once.first("b") and not once.first("b")


def test_memory_is_bounded() -> None:
    once = OncePerKey(max_keys=3)
    assert [once.first(k) for k in "abcde"] == [True, True, True, False, False]
    assert not once.first("a") and not once.first("e")
    default = OncePerKey()
    assert sum(default.first(n) for n in range(10 * MAX_KEYS)) == MAX_KEYS


def test_first_is_true_for_one_of_many_racing_threads() -> None:
    once = OncePerKey()
    barrier = threading.Barrier(8, timeout=WAIT)
    answers: list[bool] = []
    lock = threading.Lock()

    def race() -> None:
        barrier.wait()
        for _ in range(100):
            answer = once.first("same")
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert len(answers) == 800 and answers.count(True) == 1


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> OutageLog:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return OutageLog(logging.getLogger(LOGGER), "the state store")


def records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]


def test_one_warning_then_debug_then_one_info(log: OutageLog, caplog: pytest.LogCaptureFixture) -> None:
    assert not log.down
    log.failed("connection refused")
    assert log.down
    log.failed("timeout")
    log.failed("timeout")
    assert log.down
    log.succeeded()
    assert not log.down
    levels = [level for level, _ in records(caplog)]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG, logging.INFO]
    messages = [message for _, message in records(caplog)]
    assert "the state store" in messages[0] and "connection refused" in messages[0]
    assert "timeout" in messages[1]
    assert "the state store" in messages[3] and "3 failed call(s)" in messages[3]


def test_success_without_an_outage_logs_nothing(log: OutageLog, caplog: pytest.LogCaptureFixture) -> None:
    log.succeeded()
    log.succeeded()
    assert records(caplog) == [] and not log.down


def test_each_outage_gets_its_warning_and_its_info(log: OutageLog, caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(2):
        log.failed("down")
        log.succeeded()
        log.succeeded()
    levels = [level for level, _ in records(caplog)]
    assert levels == [logging.WARNING, logging.INFO, logging.WARNING, logging.INFO]
    assert all("1 failed call(s)" in m for level, m in records(caplog) if level == logging.INFO)


def test_concurrent_failures_give_one_warning(log: OutageLog, caplog: pytest.LogCaptureFixture) -> None:
    barrier = threading.Barrier(8, timeout=WAIT)

    def fail() -> None:
        barrier.wait()
        for _ in range(25):
            log.failed("down")

    threads = [threading.Thread(target=fail) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    log.succeeded()
    levels = [level for level, _ in records(caplog)]
    assert levels.count(logging.WARNING) == 1 and levels.count(logging.DEBUG) == 199
    assert levels[-1] == logging.INFO and "200 failed call(s)" in records(caplog)[-1][1]
