"""The JSON store's journal (finished msgids and value changes): durability, torn and damaged lines,
compaction by ``maintain()``/``compact()``, load, cost per message."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from channel.wechatcom_kf import files
from channel.wechatcom_kf.store import JsonFileStore, StoreUnavailable
from channel.wechatcom_kf.store.done_ids import digest
from channel.wechatcom_kf.store.journal import JOURNAL_NAME, Done, ValueSet, encode
from channel.wechatcom_kf.store.main_file import FILE_NAME, FORMAT_VERSION
from tests.channel.wechatcom_kf.store.store_helpers import (
    KF,
    T0,
    FakeClock,
    file_size_limit,
    ids,
    item,
    journal_ids,
    journal_records,
)


def main_pending(directory: Path) -> list[str]:
    doc = json.loads((directory / FILE_NAME).read_text("utf-8"))
    return ids(doc["accounts"][KF]["pending"])


def journal_lines(directory: Path) -> list[str]:
    return (directory / JOURNAL_NAME).read_text("ascii").splitlines()


def write_journal(directory: Path, lines: list[Any]) -> None:
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    (directory / JOURNAL_NAME).write_text(text)


def test_record_format() -> None:
    records = [Done(digest(KF, "m1"), T0 + 0.0004), ValueSet("k\n", 'v"', None), ValueSet("gone", None, T0)]
    assert encode(records).decode("ascii").splitlines() == [
        json.dumps(["h", f"{digest(KF, 'm1'):016x}", T0]),
        json.dumps(["k", "k\n", 'v"', None]),
        json.dumps(["k", "gone", None, T0]),
    ]
    assert encode([ValueSet("你", "好", None)]).isascii()  # escaped: one record, one ASCII line


def test_finish_is_durable_through_the_journal_alone(tmp_path: Path) -> None:
    first = JsonFileStore(tmp_path)
    first.accept_page(KF, "c1", [item("m1"), item("m2")])
    first.finish(KF, "m1")
    # The main file was not rewritten by finish: only the journal knows m1 is done.
    assert main_pending(tmp_path) == ["m1", "m2"]
    assert journal_ids(tmp_path) == ["m1"]
    second = JsonFileStore(tmp_path)  # as after a crash: the first one never closed
    assert ids(second.pending(KF)) == ["m2"]
    assert second.accept_page(KF, "c2", [item("m1"), item("m3")]) == [item("m3")]
    second.close()


def test_pending_in_main_file_minus_journal_on_load(tmp_path: Path) -> None:
    doc = {
        "version": FORMAT_VERSION,
        "accounts": {KF: {"cursor": "c1", "pending": [item(m) for m in "abcd"]}},
    }
    (tmp_path / FILE_NAME).write_text(json.dumps(doc))
    write_journal(tmp_path, [["b", T0 + 100], ["d", T0 - 1]])  # d finished long ago, now expired
    store = JsonFileStore(tmp_path, clock=FakeClock())
    assert ids(store.pending(KF)) == ["a", "c"]
    # The main file no longer lists what the journal finished, so dropping the expired id is safe.
    assert main_pending(tmp_path) == ["a", "c"]
    assert journal_ids(tmp_path) == ["b"]
    assert ids(store.accept_page(KF, "c2", [item("b"), item("d")])) == ["d"]  # d's dedup mark expired
    store.close()


def test_value_records_replay_in_order(tmp_path: Path) -> None:
    write_journal(
        tmp_path,
        [
            ["k", "a", "1", None],
            ["k", "a", "2", None],  # the later line wins
            ["k", "b", "x", None],
            ["k", "b", None, None],  # deleted
            ["k", "c", "old", T0 - 1],  # expired
            ["k", "d", "soon", T0 + 10],
        ],
    )
    clock = FakeClock()
    store = JsonFileStore(tmp_path, clock=clock)
    assert [store.get_value(k) for k in "abcd"] == ["2", None, None, "soon"]
    clock.now += 11
    assert store.get_value("d") is None
    store.close()


def test_torn_last_line_is_ignored_and_cut_off(tmp_path: Path) -> None:
    first = JsonFileStore(tmp_path)
    first.accept_page(KF, "c1", [item("m1"), item("m2")])
    first.finish(KF, "m1")
    first.close()
    with open(tmp_path / JOURNAL_NAME, "ab") as f:
        f.write(b'["k","takeover:wmUSER","zhang')  # the process died in the middle of an append
    second = JsonFileStore(tmp_path)
    assert ids(second.pending(KF)) == ["m2"]
    assert second.get_value("takeover:wmUSER") is None  # that change never became durable
    assert (tmp_path / JOURNAL_NAME).read_bytes().endswith(b"\n")
    second.finish(KF, "m2")
    second.close()
    assert journal_ids(tmp_path) == ["m1", "m2"]  # nothing appended onto the torn bytes
    third = JsonFileStore(tmp_path)
    assert third.pending(KF) == []
    third.close()


def test_damaged_lines_in_the_middle_are_skipped(tmp_path: Path) -> None:
    doc = {"version": FORMAT_VERSION, "accounts": {KF: {"cursor": "c0", "pending": []}}}
    (tmp_path / FILE_NAME).write_text(json.dumps(doc))  # the account the old-format done lines are of
    lines: list[Any] = [["m1", T0 + 100], "not json", [7, "x"], ["m2", "soon"], ["k", "a", 5, None]]
    lines += [["k", "b", "v", "never"], {"k": "v"}, "", ["m3", T0 + 100], ["k", "c", "ok", None]]
    write_journal(tmp_path, lines)
    store = JsonFileStore(tmp_path, clock=FakeClock())
    assert ids(store.accept_page(KF, "c", [item("m1"), item("m2"), item("m3")])) == ["m2"]
    assert [store.get_value(k) for k in "abc"] == [None, None, "ok"]
    store.close()
    assert journal_records(tmp_path) == [["m1", T0 + 100], ["m3", T0 + 100], ["k", "c", "ok", None]]


def test_compact_keeps_live_records_and_drops_expired(tmp_path: Path) -> None:
    clock = FakeClock()
    store = JsonFileStore(tmp_path, done_ttl_seconds=100, clock=clock)
    store.accept_page(KF, "c1", [item("m1")], skipped_ids=[f"old{i}" for i in range(50)])
    store.set_value("brief", "x", 80)
    clock.now += 60
    store.finish(KF, "m1")
    store.accept_page(KF, "c2", [], skipped_ids=["s1"])
    store.set_value("keep", "y", None)
    clock.now += 50  # the old ids and the brief value expire, m1, s1 and keep do not
    store.compact()
    assert sorted(map(str, journal_records(tmp_path))) == sorted(
        map(str, [["m1", T0 + 160], ["s1", T0 + 160], ["k", "keep", "y", None]])
    )
    assert stat.S_IMODE(os.stat(tmp_path / JOURNAL_NAME).st_mode) == 0o600
    assert main_pending(tmp_path) == []  # the main file was brought up to date first
    store.finish(KF, "m9")  # appends go to the new file
    assert "m9" in journal_ids(tmp_path)
    store.close()
    again = JsonFileStore(tmp_path, done_ttl_seconds=100, clock=clock)
    accepted = again.accept_page(KF, "c3", [item("m1"), item("s1"), item("m9"), item("old0")])
    assert ids(accepted) == ["old0"]
    assert (again.get_value("keep"), again.get_value("brief")) == ("y", None)
    again.close()


def test_maintain_compacts_a_mostly_dead_journal(tmp_path: Path) -> None:
    clock = FakeClock()
    store = JsonFileStore(tmp_path, done_ttl_seconds=100, clock=clock)
    store.accept_page(KF, "c1", [], skipped_ids=[f"old{i}" for i in range(3000)])
    clock.now += 101  # every id expires
    store.finish(KF, "fresh")
    assert store.journal.compact_count == 0  # no background thread: nothing happens by itself
    store.maintain()
    assert store.journal.compact_count == 1
    assert journal_ids(tmp_path) == ["fresh"]
    store.maintain()  # nothing more to do
    assert store.journal.compact_count == 1
    store.close()


def test_maintain_leaves_a_mostly_live_journal_alone(tmp_path: Path) -> None:
    clock = FakeClock()
    store = JsonFileStore(tmp_path, done_ttl_seconds=100, clock=clock)
    store.accept_page(KF, "c1", [], skipped_ids=[f"old{i}" for i in range(500)])
    clock.now += 50
    store.accept_page(KF, "c2", [], skipped_ids=[f"new{i}" for i in range(3000)])
    clock.now += 51  # 500 dead lines, 3000 live ones
    store.maintain()
    assert store.journal.compact_count == 0
    assert len(journal_lines(tmp_path)) == 3500
    # Pruned from memory even so: an expired id is accepted again.
    assert ids(store.accept_page(KF, "c3", [item("old0"), item("new0")])) == ["old0"]
    store.close()


def test_maintain_compacts_a_large_journal_with_enough_dead_lines(tmp_path: Path) -> None:
    clock = FakeClock()
    store = JsonFileStore(tmp_path, done_ttl_seconds=100, clock=clock, journal_max_bytes=10_000)
    store.accept_page(KF, "c1", [], skipped_ids=[f"old{i}" for i in range(1500)])
    clock.now += 50
    store.accept_page(KF, "c2", [], skipped_ids=[f"new{i}" for i in range(3000)])
    clock.now += 51  # more live lines than dead ones, but the file is over its size limit
    store.maintain()
    assert store.journal.compact_count == 1
    assert len(journal_lines(tmp_path)) == 3000
    store.close()


def test_a_compaction_that_cannot_write_is_store_unavailable_and_harmless(tmp_path: Path) -> None:
    clock = FakeClock()
    store = JsonFileStore(tmp_path, done_ttl_seconds=100, clock=clock)
    store.accept_page(KF, "c1", [item("m1")], skipped_ids=[f"old{i}" for i in range(3000)])
    store.set_value("plan:big", "x" * 8192, None)  # the compacted journal cannot be written
    clock.now += 101
    before = (tmp_path / JOURNAL_NAME).read_bytes()
    with file_size_limit(4096):
        with pytest.raises(StoreUnavailable):
            store.maintain()  # a transient failure like any other write: the caller may retry
        with pytest.raises(StoreUnavailable):
            store.compact()
    assert (tmp_path / JOURNAL_NAME).read_bytes() == before
    assert list(tmp_path.glob(".*.tmp")) == []
    store.finish(KF, "m1")  # the store goes on working
    store.maintain()
    assert store.journal.compact_count == 1
    assert sorted(journal_ids(tmp_path)) == ["m1"]
    assert store.get_value("plan:big") == "x" * 8192
    store.close()


def test_journal_is_compacted_at_start(tmp_path: Path) -> None:
    clock = FakeClock()
    store = JsonFileStore(tmp_path, done_ttl_seconds=100, clock=clock)
    for _ in range(3):
        store.finish(KF, "same")  # finishing an id twice appends it twice
        store.set_value("v", "1", None)
    store.accept_page(KF, "c", [], skipped_ids=["s1"])
    store.close()
    assert len(journal_lines(tmp_path)) == 7
    again = JsonFileStore(tmp_path, done_ttl_seconds=100, clock=clock)
    assert sorted(map(str, journal_records(tmp_path))) == sorted(
        map(str, [["same", T0 + 100], ["s1", T0 + 100], ["k", "v", "1", None]])
    )
    again.close()


def test_main_file_is_not_rewritten_per_finish_and_stays_small(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cycles = 2000
    store = JsonFileStore(tmp_path)
    main_sizes: list[int] = []
    fsyncs = [0]
    real_write_atomic = files.write_atomic

    def recording_write_atomic(path: Path, data: bytes) -> None:
        if path.name == FILE_NAME:
            main_sizes.append(len(data))
        real_write_atomic(path, data)

    def counting_fsync(fd: int) -> None:
        fsyncs[0] += 1  # counted, not done: this test is about how much is written, not durability

    monkeypatch.setattr(files, "write_atomic", recording_write_atomic)
    monkeypatch.setattr(os, "fsync", counting_fsync)
    for i in range(cycles):
        store.accept_page(KF, f"c{i}", [item(f"m{i}")])
        store.finish(KF, f"m{i}")
        store.set_value(f"plan:m{i}", "p", 60)
    print(f"{cycles} cycles: {len(main_sizes)} main writes, max {max(main_sizes)} B, {fsyncs[0]} fsyncs")
    assert store.write_count == cycles == len(main_sizes)  # one per accept_page, none per finish
    assert max(main_sizes) < 1024  # the cursor and at most the page being accepted, whatever the history
    assert os.path.getsize(tmp_path / FILE_NAME) < 1024
    assert fsyncs[0] <= 5 * cycles  # constant per cycle: main file, directory, two journal appends
    assert len(journal_lines(tmp_path)) == 2 * cycles
    store.close()
