"""The JSON store's done ids (``done_ids.py``): exact membership across the set and frozen runs, expiry
by slot (at least the TTL, at most one slot more), per-account digests, what compaction writes."""

from __future__ import annotations

import pytest

from channel.wechatcom_kf.store import done_ids
from channel.wechatcom_kf.store.done_ids import SLOTS_PER_TTL, DoneIds, digest

TTL = 2400.0
SLOT = TTL / SLOTS_PER_TTL


def test_digest_is_per_account_and_64_bits() -> None:
    assert digest("wkA", "m1") != digest("wkB", "m1")
    assert digest("wkA", "m1") == digest("wkA", "m1")
    assert digest("wk", "Am1") != digest("wkA", "m1")  # the separator keeps the pair unambiguous
    assert 0 <= digest("wkA", "m1") < 2**64


def test_membership_is_exact_across_sets_and_frozen_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(done_ids, "FREEZE_AT", 100)  # many freezes and merges in a small test
    done = DoneIds(TTL)
    keys = [digest("wkA", f"m{i}") for i in range(1050)]
    for n, key in enumerate(keys):
        done.add(key, 1000.0 + TTL + n * 0.001)
    assert all(done.contains(key, 1000.0) for key in keys)
    assert not any(done.contains(digest("wkA", f"x{i}"), 1000.0) for i in range(2000))
    assert not any(done.contains(digest("wkB", f"m{i}"), 1000.0) for i in range(1050))
    runs = [len(run) for run in done._frozen[next(iter(done._frozen))]]
    assert sum(runs) + sum(map(len, done._sets.values())) == 1050
    assert len(runs) <= 4  # merged as they grow, not one run per freeze
    assert len(done) == 1050


def test_an_id_is_kept_at_least_the_ttl_and_at_most_a_slot_more() -> None:
    done = DoneIds(TTL)
    key = digest("wkA", "m1")
    done.add(key, 5000.0)
    assert done.contains(key, 4999.9)
    assert not done.contains(key, 5000.0 + SLOT)
    done.prune(5000.0 + SLOT)
    assert len(done) == 0 and not done._expires


def test_prune_drops_whole_slots_and_keeps_the_rest() -> None:
    done = DoneIds(TTL)
    old, new = digest("wkA", "old"), digest("wkA", "new")
    done.add(old, 1000.0)
    done.add(new, 1000.0 + 3 * SLOT)  # a later slot: the first one is frozen
    assert done._frozen and done.contains(old, 999.0)
    assert done.prune(1000.0 + SLOT) == 1
    assert not done.contains(old, 0.0) and done.contains(new, 1000.0 + SLOT)


def test_records_and_load_round_trip() -> None:
    done = DoneIds(TTL)
    keys = [digest("wkA", f"m{i}") for i in range(10)]
    for n, key in enumerate(keys):
        done.add(key, 2000.0 + n * SLOT)
    records = list(done.records())
    assert sorted(key for key, _ in records) == sorted(keys)
    again = done_ids.load(records, TTL, 2000.0 + 4.5 * SLOT)  # the first four slots have expired
    assert sorted(key for key, _ in again.records()) == sorted(keys[5:])
    assert all(again.contains(key, 2000.0 + 4.5 * SLOT) for key in keys[5:])
