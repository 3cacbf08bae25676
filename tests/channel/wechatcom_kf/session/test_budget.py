"""BudgetLedger: 5 sends per customer message, shared by the customer's unanswered messages."""

from __future__ import annotations

from channel.wechatcom_kf.session.budget import MAX_WAITING, BudgetLedger

A = ("wkA", "wmA")
B = ("wkA", "wmB")


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_new_message_has_five_sends():
    ledger = BudgetLedger(clock=Clock())
    ledger.note_message(A, "m1", 999_990)
    assert ledger.allowance_for(A, ["m1"]) == 5


def test_sends_consume_the_allowance_and_a_new_message_resets_it():
    clock = Clock()
    ledger = BudgetLedger(clock=clock)
    ledger.note_message(A, "m1", clock.now - 10)
    ledger.consume(A, 3)
    ledger.answered(A, ["m1"])
    clock.now += 5
    assert ledger.allowance_for(A, ["m1"]) == 2
    ledger.note_message(A, "m2", clock.now + 1)
    assert ledger.allowance_for(A, ["m2"]) == 5


def test_earlier_turns_leave_one_send_for_each_later_unanswered_message():
    clock = Clock()
    ledger = BudgetLedger(clock=clock)
    for n in range(3):
        ledger.note_message(A, f"m{n}", clock.now - 10 + n)
    assert ledger.allowance_for(A, ["m0"]) == 3
    ledger.consume(A, 3)
    ledger.answered(A, ["m0"])
    assert ledger.allowance_for(A, ["m1"]) == 1
    ledger.consume(A, 1)
    ledger.answered(A, ["m1"])
    assert ledger.allowance_for(A, ["m2"]) == 1


def test_a_merged_turn_counts_once():
    clock = Clock()
    ledger = BudgetLedger(clock=clock)
    ledger.note_message(A, "img", clock.now - 2)
    ledger.note_message(A, "question", clock.now - 1)
    assert ledger.allowance_for(A, ["img", "question"]) == 5


def test_more_unanswered_messages_than_sends_leaves_old_turns_without_budget():
    clock = Clock()
    ledger = BudgetLedger(clock=clock)
    for n in range(7):
        ledger.note_message(A, f"m{n}", clock.now - 10)
    assert ledger.allowance_for(A, ["m0"]) == 0
    assert ledger.allowance_for(A, ["m6"]) == 5


def test_customers_are_independent():
    clock = Clock()
    ledger = BudgetLedger(clock=clock)
    ledger.note_message(A, "a1", clock.now - 1)
    ledger.note_message(B, "b1", clock.now - 1)
    ledger.consume(A, 5)
    assert ledger.allowance_for(A, ["a1"]) == 0
    assert ledger.allowance_for(B, ["b1"]) == 5


def test_the_ledger_stays_bounded():
    clock = Clock()
    ledger = BudgetLedger(max_customers=100, clock=clock)
    for n in range(1000):
        key = ("wkA", f"wm{n}")
        ledger.note_message(key, f"m{n}", clock.now)
        ledger.answered(key, [f"m{n}"])
    assert len(ledger) <= 100


def test_sends_in_the_same_second_as_the_message_limit_extra_parts_only():
    clock = Clock(1_000_000.5)
    ledger = BudgetLedger(clock=clock)
    ledger.consume(A, 4)  # answers to earlier messages, in the second the new message came
    ledger.note_message(A, "m1", 1_000_000)
    ledger.note_message(A, "m2", 1_000_000)
    assert ledger.allowance_for(A, ["m1"]) == 1
    clock.now += 2
    ledger.consume(A, 1)
    ledger.answered(A, ["m1"])
    assert ledger.allowance_for(A, ["m2"]) == 1


def test_entries_expire_48_hours_after_the_last_activity():
    clock = Clock()
    ledger = BudgetLedger(clock=clock)
    ledger.note_message(A, "a1", clock.now)
    clock.now += 24 * 3600
    ledger.note_message(B, "b1", clock.now)
    ledger.consume(B, 1)
    ledger.answered(B, ["b1"])
    clock.now += 24 * 3600 + 1  # A (unanswered) is 48 h old, B is 24 h old
    assert len(ledger) == 1
    assert ledger.latest_message_time(A) is None
    assert ledger.allowance_for(A, ["a1"]) == 5  # forgotten: WeCom's window closed anyway
    assert ledger.allowance_for(B, ["b2"]) == 4
    clock.now += 24 * 3600
    assert len(ledger) == 0


def test_a_send_keeps_the_entry_alive():
    clock = Clock()
    ledger = BudgetLedger(clock=clock)
    ledger.note_message(A, "a1", clock.now)
    clock.now += 47 * 3600
    ledger.consume(A, 2)
    clock.now += 2 * 3600  # 49 h after the message, 2 h after the last send
    assert ledger.latest_message_time(A) == 1_000_000.0


def test_only_send_times_that_can_still_count_are_kept():
    clock = Clock()
    ledger = BudgetLedger(clock=clock)
    for n in range(50):
        ledger.note_message(A, f"m{n}", clock.now)
        ledger.consume(A, 5)
        ledger.answered(A, [f"m{n}"])
        clock.now += 10
    ledger.note_message(A, "last", clock.now)
    assert ledger.allowance_for(A, ["last"]) == 5
    customer = ledger._customers.get(A)
    assert customer is not None and customer.send_times == ()


def test_latest_message_time_is_the_newest_send_time_seen():
    ledger = BudgetLedger(clock=Clock())
    assert ledger.latest_message_time(A) is None
    ledger.note_message(A, "m2", 999_995)
    ledger.note_message(A, "m1", 999_990)  # an older message routed later (a re-claim)
    assert ledger.latest_message_time(A) == 999_995


def test_nothing_consumed_for_zero_sends_and_unknown_customers_are_ignored():
    ledger = BudgetLedger(clock=Clock())
    ledger.consume(A, 0)
    ledger.answered(B, ["x"])
    assert len(ledger) == 0


def test_the_waiting_list_of_one_customer_is_bounded():
    clock = Clock()
    ledger = BudgetLedger(clock=clock)
    for n in range(MAX_WAITING + 10):
        ledger.note_message(A, f"m{n}", clock.now - 10)
    customer = ledger._customers.get(A)
    assert customer is not None and customer.waiting is not None
    assert len(customer.waiting) == MAX_WAITING
    assert "m0" not in customer.waiting


def test_a_turns_own_sends_in_the_messages_second_count_for_its_later_replies():
    now = [1000.2]
    ledger = BudgetLedger(clock=lambda: now[0])
    key = ("wk", "wm")
    ledger.note_message(key, "m1", 1000.0)
    ledger.consume(key, 5)  # the same second as the message: WeCom may or may not count them
    assert ledger.allowance_for(key, ["m1"]) == 1  # a first reply always gets its one send
    # The turn's own five certainly count: a sixth reply of the same turn gets nothing.
    assert ledger.allowance_for(key, ["m1"], 5, first=False) == 0
    assert ledger.allowance_for(key, ["m1"], 3, first=False) == 0  # 3 certain + 2 that may count


def test_messages_held_together_reserve_one_send_between_them():
    ledger = BudgetLedger(clock=lambda: 2000.0)
    key = ("wk", "wm")
    for i in range(8):
        ledger.note_message(key, f"m{i}", 1990.0)
    # m0 answered alone while m1..m7 wait: seven later turns would leave it nothing.
    assert ledger.allowance_for(key, ["m0"]) == 0
    ledger.hold_together(key, [f"m{i}" for i in range(1, 8)])  # the flood guard merges them
    assert ledger.allowance_for(key, ["m0"]) == 4  # one send kept for the merged turn
