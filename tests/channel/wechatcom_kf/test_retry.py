"""RetryPolicy: jittered capped backoff, attempt and time budgets, stopping; the module's policies."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

import pytest

from channel.wechatcom_kf import retry
from channel.wechatcom_kf.retry import ONCE, PULL, QUICK, SEND, STORE, RetryPolicy

WAIT = 5.0
NO_WAIT = RetryPolicy(base=0.0, cap=0.0)


class Flaky:
    """Fails with ``errors`` (in order), then returns ``value``; counts the calls."""

    def __init__(self, *errors: Exception, value: object = "ok") -> None:
        self.errors = list(errors)
        self.value = value
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.value


def any_error(exc: Exception) -> bool:
    return True


@pytest.mark.parametrize(("base", "cap"), [(0.5, 8.0), (1.0, 15.0), (0.2, 2.0), (3.0, 1.0)])
def test_delay_is_between_half_and_all_of_the_capped_ceiling(base: float, cap: float) -> None:
    policy = RetryPolicy(base=base, cap=cap)
    for failures in range(1, 12):
        ceiling = min(cap, base * 2 ** (failures - 1))
        delays = [policy.delay(failures) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (failures, min(delays), max(delays))
        assert len(set(delays)) > 1  # jitter


def test_delay_after_very_many_failures_is_the_cap() -> None:
    for policy in (PULL, SEND, STORE, QUICK, RetryPolicy(base=1.0, cap=60.0)):
        for failures in (40, 1_000, 10**9):
            assert policy.cap / 2 <= policy.delay(failures) <= policy.cap


def test_allows_counts_the_first_try_and_bounds_the_time() -> None:
    policy = RetryPolicy(base=0.0, cap=0.0, max_attempts=3, total_seconds=10.0)
    assert policy.allows(1, 0.0) and policy.allows(2, 9.99)
    assert not policy.allows(3, 0.0)
    assert not policy.allows(1, 10.0)
    unbounded = RetryPolicy(base=1.0, cap=2.0)
    assert unbounded.allows(10**6, 10.0**9)


def test_call_retries_until_success_and_reports_each_retry() -> None:
    first, second = ConnectionError("1"), TimeoutError("2")
    attempt = Flaky(first, second, value=42)
    told: list[tuple[Exception, int, float]] = []
    result = NO_WAIT.call(attempt, retry_if=any_error, on_retry=lambda e, n, d: told.append((e, n, d)))
    assert result == 42 and attempt.calls == 3
    assert told == [(first, 1, 0.0), (second, 2, 0.0)]


def test_call_reraises_at_once_what_retry_if_rejects() -> None:
    attempt = Flaky(ConnectionError("retry me"), ValueError("bad request"))
    told: list[int] = []
    with pytest.raises(ValueError, match="bad request"):
        NO_WAIT.call(
            attempt,
            retry_if=lambda exc: isinstance(exc, ConnectionError),
            on_retry=lambda e, n, d: told.append(n),
        )
    assert attempt.calls == 2 and told == [1]


def test_call_gives_up_after_max_attempts_with_the_last_error() -> None:
    errors = [ConnectionError(str(n)) for n in range(10)]
    attempt = Flaky(*errors)
    policy = RetryPolicy(base=0.0, cap=0.0, max_attempts=4)
    with pytest.raises(ConnectionError) as raised:
        policy.call(attempt, retry_if=any_error)
    assert attempt.calls == 4 and raised.value is errors[3]


def test_call_gives_up_when_the_time_budget_is_spent() -> None:
    attempt = Flaky(ConnectionError("down"), value="never")
    policy = RetryPolicy(base=0.0, cap=0.0, total_seconds=0.0)
    with pytest.raises(ConnectionError):
        policy.call(attempt, retry_if=any_error)
    assert attempt.calls == 1


def run_in_thread(target: Callable[[], object]) -> list[object]:
    """Run ``target`` in a thread, bounded by WAIT; returns [result] or [exception]."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(target())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive(), "call() did not end"
    return outcome


def test_a_set_stop_ends_the_wait_and_reraises() -> None:
    slow = RetryPolicy(base=600.0, cap=600.0)  # a wait nobody waits out
    stop = threading.Event()
    error = ConnectionError("down")
    attempt = Flaky(error, value="never")
    told: list[int] = []

    def on_retry(exc: Exception, failures: int, delay: float) -> None:
        told.append(failures)
        assert 300.0 <= delay <= 600.0
        stop.set()

    outcome = run_in_thread(lambda: slow.call(attempt, retry_if=any_error, stop=stop, on_retry=on_retry))
    assert outcome == [error] and attempt.calls == 1 and told == [1]


def test_stop_set_while_waiting_ends_the_wait() -> None:
    slow = RetryPolicy(base=600.0, cap=600.0)
    stop, waiting = threading.Event(), threading.Event()
    error = ConnectionError("down")
    attempt = Flaky(error, value="never")
    outcome: list[object] = []

    def run() -> None:
        try:
            slow.call(attempt, retry_if=any_error, stop=stop, on_retry=lambda e, n, d: waiting.set())
        except ConnectionError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert waiting.wait(WAIT)
    stop.set()
    thread.join(WAIT)
    assert not thread.is_alive() and outcome == [error] and attempt.calls == 1


def test_an_unset_stop_lets_the_retries_go_on() -> None:
    attempt = Flaky(ConnectionError("1"), ConnectionError("2"), value="ok")
    outcome = run_in_thread(lambda: NO_WAIT.call(attempt, retry_if=any_error, stop=threading.Event()))
    assert outcome == ["ok"] and attempt.calls == 3


def test_once_never_retries() -> None:
    assert ONCE.max_attempts == 1 and not ONCE.allows(1, 0.0)
    attempt = Flaky(ConnectionError("down"), value="never")
    told: list[int] = []
    outcome = run_in_thread(
        lambda: ONCE.call(attempt, retry_if=any_error, on_retry=lambda e, n, d: told.append(n))
    )
    assert isinstance(outcome[0], ConnectionError) and attempt.calls == 1 and told == []


def test_quick_is_bounded_in_attempts_and_time() -> None:
    assert QUICK.max_attempts is not None and QUICK.total_seconds is not None
    assert not QUICK.allows(QUICK.max_attempts, 0.0)
    assert not QUICK.allows(1, QUICK.total_seconds)
    worst_wait = sum(min(QUICK.cap, QUICK.base * 2 ** (n - 1)) for n in range(1, QUICK.max_attempts))
    assert worst_wait <= QUICK.total_seconds


def test_module_policies() -> None:
    for name in ("ONCE", "QUICK", "PULL", "SEND", "STORE"):
        assert isinstance(getattr(retry, name), RetryPolicy), name
    for policy in (PULL, SEND, STORE):  # retried until success, a deadline or stopping
        assert 0 < policy.base <= policy.cap
        assert policy.allows(1_000, 10.0**6)
    with pytest.raises(dataclasses.FrozenInstanceError):
        QUICK.cap = 100.0  # type: ignore[misc]
