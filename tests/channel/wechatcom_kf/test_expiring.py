"""ExpiringMap, ExpiringKeys and ExpiringRecords: TTL from the last set, a bound on keys, an injected
clock."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from channel.wechatcom_kf.expiring import ExpiringKeys, ExpiringMap, ExpiringRecords

WAIT = 5.0


class FakeClock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_for_ttl_seconds() -> None:
    clock = FakeClock()
    entries: ExpiringMap[str] = ExpiringMap(ttl=10.0, max_keys=100, clock=clock)
    entries.set("wm1", "first")
    clock.now += 9.99
    assert entries.get("wm1") == "first" and "wm1" in entries and len(entries) == 1
    clock.now += 0.01
    assert entries.get("wm1") is None and "wm1" not in entries and len(entries) == 0


def test_the_ttl_counts_from_the_last_set() -> None:
    clock = FakeClock()
    entries: ExpiringMap[int] = ExpiringMap(ttl=10.0, max_keys=100, clock=clock)
    entries.set("a", 1)
    entries.set("b", 2)
    clock.now += 6
    entries.set("a", 3)  # refreshed: now expires at +16
    clock.now += 4
    assert entries.get("a") == 3 and entries.get("b") is None
    clock.now += 5.99
    assert entries.get("a") == 3
    clock.now += 0.01
    assert entries.get("a") is None and len(entries) == 0


def test_reading_does_not_refresh() -> None:
    clock = FakeClock()
    entries: ExpiringMap[str] = ExpiringMap(ttl=10.0, max_keys=100, clock=clock)
    entries.set("a", "x")
    for _ in range(9):
        clock.now += 1
        assert entries.get("a") == "x" and "a" in entries and len(entries) == 1
    clock.now += 1
    assert "a" not in entries


def test_the_least_recently_set_go_first_beyond_max_keys() -> None:
    entries: ExpiringMap[str] = ExpiringMap(ttl=60.0, max_keys=3, clock=FakeClock())
    for key in "abc":
        entries.set(key, key.upper())
    entries.get("a")  # reading is not setting
    entries.set("d", "D")
    assert "a" not in entries and len(entries) == 3
    entries.set("b", "B2")  # b is the most recent now
    entries.set("e", "E")
    assert "c" not in entries
    assert [entries.get(k) for k in "bde"] == ["B2", "D", "E"]


def test_setting_a_present_key_when_full_evicts_nothing() -> None:
    entries: ExpiringMap[int] = ExpiringMap(ttl=60.0, max_keys=2, clock=FakeClock())
    entries.set("a", 1)
    entries.set("b", 2)
    entries.set("a", 3)
    entries.set("a", 4)
    assert entries.get("a") == 4 and entries.get("b") == 2 and len(entries) == 2


def test_max_keys_is_at_least_one() -> None:
    entries: ExpiringMap[int] = ExpiringMap(ttl=60.0, max_keys=0, clock=FakeClock())
    entries.set("a", 1)
    assert entries.get("a") == 1
    entries.set("b", 2)
    assert "a" not in entries and entries.get("b") == 2 and len(entries) == 1


def test_discard() -> None:
    entries: ExpiringMap[int] = ExpiringMap(ttl=60.0, max_keys=10, clock=FakeClock())
    entries.set("a", 1)
    entries.set("b", 2)
    entries.discard("a")
    entries.discard("never set")
    assert "a" not in entries and entries.get("b") == 2 and len(entries) == 1
    entries.set("a", 5)
    assert entries.get("a") == 5


def test_falsy_values_are_values() -> None:
    entries: ExpiringMap[object] = ExpiringMap(ttl=60.0, max_keys=10, clock=FakeClock())
    for key, value in (("zero", 0), ("empty", ""), ("false", False), ("list", [])):
        entries.set(key, value)
        assert key in entries and entries.get(key) == value
    assert len(entries) == 4


def test_expired_entries_stop_counting_against_max_keys() -> None:
    clock = FakeClock()
    entries: ExpiringMap[int] = ExpiringMap(ttl=10.0, max_keys=2, clock=clock)
    entries.set("a", 1)
    clock.now += 5
    entries.set("b", 2)
    clock.now += 5  # a expired
    entries.set("c", 3)
    assert entries.get("b") == 2 and entries.get("c") == 3 and len(entries) == 2


def test_expiring_keys_is_a_set() -> None:
    clock = FakeClock()
    keys = ExpiringKeys(ttl=10.0, max_keys=2, clock=clock)
    keys.add("m1")
    keys.add("m2")
    keys.add("m1")  # m2 is the least recently set now
    assert "m1" in keys and "m2" in keys and "m3" not in keys and len(keys) == 2
    keys.add("m3")
    assert "m2" not in keys and "m1" in keys and "m3" in keys
    keys.discard("m1")
    assert "m1" not in keys and len(keys) == 1
    clock.now += 10
    assert "m3" not in keys and len(keys) == 0


@dataclass
class _Record:
    count: int = 0
    expires_at: float = 0.0


def test_expiring_records_carry_their_own_expiry() -> None:
    clock = FakeClock()
    records: ExpiringRecords[_Record] = ExpiringRecords(ttl=10.0, max_keys=2, clock=clock)
    first = _Record()
    records.set("wm1", first)
    assert records.get("wm1") is first and first.expires_at == 1010.0
    clock.now += 6
    first.count += 1
    records.set("wm1", first)  # touched: 10 s again, and the most recent
    records.set("wm2", _Record())
    records.set("wm3", _Record())  # the bound drops the least recently set: wm1
    assert records.get("wm1") is None and len(records) == 2
    records.set("wm1", first)
    clock.now += 9.99
    assert records.get("wm1") is first and first.count == 1 and first.expires_at == 1016.0
    clock.now += 0.01
    assert records.get("wm1") is None and "wm1" not in records and len(records) == 0


def test_the_bound_holds_under_concurrent_writers() -> None:
    entries: ExpiringMap[int] = ExpiringMap(ttl=60.0, max_keys=50, clock=FakeClock())
    barrier = threading.Barrier(8, timeout=WAIT)

    def write(worker: int) -> None:
        barrier.wait()
        for n in range(500):
            entries.set((worker, n), n)
            entries.get((worker, n - 1))
            if n % 7 == 0:
                entries.discard((worker, n - 3))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads)
    assert 0 < len(entries) <= 50
    assert any((w, 499) in entries for w in range(8))  # the last writer's last key at least
