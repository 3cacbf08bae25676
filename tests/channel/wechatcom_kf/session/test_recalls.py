"""Recalls: msgids a customer recalled, bounded in count and time."""

from __future__ import annotations

from channel.wechatcom_kf.session.recalls import Recalls


def test_a_recalled_msgid_is_found_among_a_turns_msgids() -> None:
    recalls = Recalls()
    recalls.add("m2")
    assert recalls.any_recalled(["m1", "m2"])
    assert not recalls.any_recalled(["m1", "m3"])
    assert not recalls.any_recalled([])
    assert len(recalls) == 1


def test_adding_a_msgid_twice_keeps_one_entry() -> None:
    recalls = Recalls()
    recalls.add("m1")
    recalls.add("m1")
    assert len(recalls) == 1


def test_recalls_are_bounded_oldest_first() -> None:
    recalls = Recalls(max_entries=3)
    for n in range(10):
        recalls.add(f"m{n}")
    assert len(recalls) == 3
    assert recalls.any_recalled(["m9"])
    assert not recalls.any_recalled(["m0", "m6"])


def test_recalls_expire() -> None:
    recalls = Recalls(ttl_seconds=0.0)  # expired as soon as added
    recalls.add("m1")
    assert not recalls.any_recalled(["m1"])
    assert len(recalls) == 0
