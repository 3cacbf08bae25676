"""The JSON store's done-id journal: durability, torn lines, compaction, load, cost per message."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from channel.wechatcom_kf.store import JsonFileStore, files
from channel.wechatcom_kf.store.journal import JOURNAL_NAME
from channel.wechatcom_kf.store.main_file import FILE_NAME, FORMAT_VERSION

KF = "wkAAAA"
T0 = 1_700_000_000.0


def item(msgid: str) -> dict[str, Any]:
    return {"msgid": msgid, "open_kfid": KF, "origin": 3, "msgtype": "text", "text": {"content": "hi"}}


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [it["msgid"] for it in items]


def main_pending(directory: Path) -> list[str]:
    doc = json.loads((directory / FILE_NAME).read_text("utf-8"))
    return ids(doc["accounts"][KF]["pending"])


def journal_lines(directory: Path) -> list[str]:
    return (directory / JOURNAL_NAME).read_text("ascii").splitlines()


def journal_ids(directory: Path) -> list[str]:
    return [json.loads(line)[0] for line in journal_lines(directory)]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def test_finish_is_durable_through_the_journal_alone(tmp_path: Path):
    first = JsonFileStore(tmp_path)
    first.accept_page(KF, "c1", [item("m1"), item("m2")])
    first.finish("m1")
    first.flush()
    # The main file was not rewritten by finish: only the journal knows m1 is done.
    assert main_pending(tmp_path) == ["m1", "m2"]
    assert journal_ids(tmp_path) == ["m1"]
    second = JsonFileStore(tmp_path)  # as after a crash: the first one never closed
    assert ids(second.pending(KF)) == ["m2"]
    assert second.accept_page(KF, "c2", [item("m1"), item("m3")]) == [item("m3")]
    second.close()
    first.close()


def test_pending_in_main_file_minus_journal_on_load(tmp_path: Path):
    doc = {
        "version": FORMAT_VERSION,
        "accounts": {KF: {"cursor": "c1", "pending": [item(m) for m in "abcd"]}},
    }
    (tmp_path / FILE_NAME).write_text(json.dumps(doc))
    lines = [json.dumps(["b", T0 + 100]), json.dumps(["d", T0 - 1])]  # d finished long ago, now expired
    (tmp_path / JOURNAL_NAME).write_text("\n".join(lines) + "\n")
    store = JsonFileStore(tmp_path, clock=Clock())
    assert ids(store.pending(KF)) == ["a", "c"]
    # The main file no longer lists what the journal finished, so dropping the expired id is safe.
    assert main_pending(tmp_path) == ["a", "c"]
    assert journal_ids(tmp_path) == ["b"]
    assert ids(store.accept_page(KF, "c2", [item("b"), item("d")])) == ["d"]  # d's dedup mark expired
    store.close()


def test_torn_last_line_is_ignored_and_cut_off(tmp_path: Path):
    first = JsonFileStore(tmp_path)
    first.accept_page(KF, "c1", [item("m1"), item("m2")])
    first.finish("m1")
    first.close()
    with open(tmp_path / JOURNAL_NAME, "ab") as f:
        f.write(b'["m2",17000')  # the process died in the middle of an append
    second = JsonFileStore(tmp_path)
    assert ids(second.pending(KF)) == ["m2"]  # m2's finish never became durable
    assert (tmp_path / JOURNAL_NAME).read_bytes().endswith(b"\n")
    second.finish("m2")
    second.close()
    assert journal_ids(tmp_path) == ["m1", "m2"]  # nothing appended onto the torn bytes
    third = JsonFileStore(tmp_path)
    assert third.pending(KF) == []
    third.close()


def test_damaged_line_in_the_middle_is_skipped(tmp_path: Path):
    good = [json.dumps(["m1", T0 + 100]), "not json", json.dumps([7, "x"]), json.dumps(["m3", T0 + 100])]
    (tmp_path / JOURNAL_NAME).write_text("\n".join(good) + "\n")
    store = JsonFileStore(tmp_path, clock=Clock())
    assert ids(store.accept_page(KF, "c", [item("m1"), item("m2"), item("m3")])) == ["m2"]
    store.close()
    assert journal_ids(tmp_path) == ["m1", "m3"]  # compacted at start


def test_compaction_keeps_live_ids_and_drops_expired(tmp_path: Path):
    clock = Clock()
    store = JsonFileStore(tmp_path, done_ttl_seconds=100, clock=clock)
    store.accept_page(KF, "c1", [item("m1")], skipped_ids=[f"old{i}" for i in range(50)])
    clock.now += 60
    store.finish("m1")
    store.accept_page(KF, "c2", [], skipped_ids=["s1"])
    clock.now += 50  # the old ids expire, m1 and s1 do not
    store.compact()
    assert sorted(journal_ids(tmp_path)) == ["m1", "s1"]
    assert stat.S_IMODE(os.stat(tmp_path / JOURNAL_NAME).st_mode) == 0o600
    store.finish("m9")  # appends go to the new file
    store.close()
    again = JsonFileStore(tmp_path, done_ttl_seconds=100, clock=clock)
    assert ids(again.accept_page(KF, "c3", [item("m1"), item("s1"), item("m9"), item("old0")])) == ["old0"]
    again.close()


def test_dead_lines_trigger_compaction_in_the_background(tmp_path: Path):
    clock = Clock()
    store = JsonFileStore(tmp_path, done_ttl_seconds=100, clock=clock, commit_delay=0.001)
    store.accept_page(KF, "c1", [], skipped_ids=[f"old{i}" for i in range(3000)])
    clock.now += 101  # every id expires; the next batch prunes them and finds the journal mostly dead
    store.finish("fresh")
    for _ in range(500):  # bounded wait for the flusher
        if store.journal.compact_count:
            break
        store._wake.wait(0.01)
    assert store.journal.compact_count == 1
    assert journal_ids(tmp_path) == ["fresh"]
    store.close()


def test_journal_is_compacted_at_start(tmp_path: Path):
    clock = Clock()
    store = JsonFileStore(tmp_path, done_ttl_seconds=100, clock=clock)
    for _ in range(3):
        store.finish("same")  # finishing an id twice appends it twice
        store.flush()
    store.accept_page(KF, "c", [], skipped_ids=["s1"])
    store.close()
    assert len(journal_lines(tmp_path)) == 4
    again = JsonFileStore(tmp_path, done_ttl_seconds=100, clock=clock)
    assert journal_ids(again.directory) == ["same", "s1"]
    again.close()


def test_failed_append_is_cut_back_and_finishes_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store = JsonFileStore(tmp_path)
    store.accept_page(KF, "c1", [item("m1"), item("m2")])
    store.finish("m1")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        store.flush()
    monkeypatch.undo()
    assert (tmp_path / JOURNAL_NAME).read_bytes() == b""
    store.flush()  # the finish was kept in memory and is written now
    assert journal_ids(tmp_path) == ["m1"]
    store.close()


def test_main_file_is_not_rewritten_per_finish_and_stays_small(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    cycles = 10_000
    store = JsonFileStore(tmp_path, commit_delay=0.001)
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
        store.finish(f"m{i}")
    store.flush()
    print(f"{cycles} cycles: {len(main_sizes)} main writes, max {max(main_sizes)} B, {fsyncs[0]} fsyncs")
    assert store.write_count == cycles == len(main_sizes)  # one per accept_page, none per finish
    assert max(main_sizes) < 1024  # the cursor and at most the page being accepted, whatever the history
    assert os.path.getsize(tmp_path / FILE_NAME) < 1024
    assert fsyncs[0] <= 4 * cycles  # constant per cycle: journal append, temp file, directory
    assert len(journal_lines(tmp_path)) == cycles
    store.close()
