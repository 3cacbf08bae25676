"""JsonFileStore specifics: file safety, group commit, values in the journal, real write failures, the
migration of older main files, in-memory claims. The journal itself is in test_json_journal.py."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from channel.wechatcom_kf.store import PULL_REQUEST_TTL_SECONDS, JsonFileStore, StoreError, StoreUnavailable
from channel.wechatcom_kf.store.journal import JOURNAL_NAME
from channel.wechatcom_kf.store.main_file import FILE_NAME, FORMAT_VERSION
from tests.channel.wechatcom_kf.store.store_helpers import (
    KF,
    LONG,
    T0,
    FakeClock,
    file_size_limit,
    ids,
    item,
    journal_ids,
    journal_records,
    wait_until,
)


def on_disk(directory: Path) -> dict[str, Any]:
    return json.loads((directory / FILE_NAME).read_text("utf-8"))


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = JsonFileStore(tmp_path / "state", clock=FakeClock())
    yield s
    s.close()


# --- files ----------------------------------------------------------------------------------------


def test_files_are_private(store: JsonFileStore) -> None:
    store.accept_page(KF, "c1", [item("m1")], skipped_ids=["s1"])
    store.finish(KF, "m1")
    store.set_value("takeover:wmUSER", "zhangsan", None)
    assert mode(store.path) == 0o600
    assert mode(store.directory / JOURNAL_NAME) == 0o600
    assert mode(store.directory) & 0o077 == 0


def test_existing_public_files_become_private(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_text(json.dumps({KF: "c0"}))
    (tmp_path / JOURNAL_NAME).write_text(json.dumps(["m1", T0 + 100]) + "\n")
    os.chmod(tmp_path / FILE_NAME, 0o644)
    os.chmod(tmp_path / JOURNAL_NAME, 0o644)
    JsonFileStore(tmp_path, clock=FakeClock()).close()
    assert mode(tmp_path / FILE_NAME) == 0o600
    assert mode(tmp_path / JOURNAL_NAME) == 0o600


def test_accept_page_is_on_disk_when_it_returns(store: JsonFileStore) -> None:
    store.accept_page(KF, "c1", [item("m1")], skipped_ids=["old"])
    doc = on_disk(store.directory)
    assert doc == {"version": FORMAT_VERSION, "accounts": {KF: {"cursor": "c1", "pending": [item("m1")]}}}
    assert journal_ids(store.directory) == ["old"]  # done ids live in the journal only


def test_leftover_temp_files_are_ignored_and_removed(tmp_path: Path) -> None:
    first = JsonFileStore(tmp_path)
    first.accept_page(KF, "c1", [item("m1")])
    first.close()
    leftover = tmp_path / f".{FILE_NAME}.99999-abcd.tmp"
    leftover.write_bytes(b'{"version": 3, "accounts": {"wkAAAA": {"cur')  # a write cut short by a crash
    journal_leftover = tmp_path / f".{JOURNAL_NAME}.99999-abcd.tmp"
    journal_leftover.write_bytes(b'["m1",17')  # a compaction cut short
    second = JsonFileStore(tmp_path)
    assert second.load_cursor(KF) == "c1"
    assert ids(second.pending(KF)) == ["m1"]
    assert not leftover.exists()
    assert not journal_leftover.exists()
    second.close()


# --- finish: durable on return, group commit -------------------------------------------------------


def test_finish_is_in_the_journal_when_it_returns(store: JsonFileStore) -> None:
    store.accept_page(KF, "c1", [item("m1")])
    store.finish(KF, "m1")  # no flush()
    assert journal_ids(store.directory) == ["m1"]


def test_concurrent_finishes_share_one_journal_write(store: JsonFileStore) -> None:
    count = 20
    store.accept_page(KF, "c", [item(f"m{i}") for i in range(count)])
    appends = store.journal.append_count
    threads = [threading.Thread(target=store.finish, args=(KF, f"m{i}")) for i in range(count)]
    # White box: while the test holds the writer's lock nothing reaches the file, so every finish
    # queues its line and waits; the first waiting caller then writes them all in one batch.
    with store._write_lock:
        for t in threads:
            t.start()
        wait_until(lambda: store.pending(KF) == [], 10, "every finish to queue its line")
        assert all(t.is_alive() for t in threads)  # none returned before its line was durable
        assert journal_ids(store.directory) == []
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    assert store.journal.append_count == appends + 1
    assert sorted(journal_ids(store.directory)) == sorted(f"m{i}" for i in range(count))


def test_finish_after_close_is_still_written(tmp_path: Path) -> None:
    store = JsonFileStore(tmp_path)
    store.accept_page(KF, "c", [item("m1")])
    store.close()
    store.finish(KF, "m1")
    assert journal_ids(tmp_path) == ["m1"]


def test_close_writes_a_main_file_without_finished_items(tmp_path: Path) -> None:
    store = JsonFileStore(tmp_path)
    store.accept_page(KF, "c", [item("m1"), item("m2")])
    store.finish(KF, "m1")
    assert ids(on_disk(tmp_path)["accounts"][KF]["pending"]) == ["m1", "m2"]  # finish left it alone
    store.close()
    assert ids(on_disk(tmp_path)["accounts"][KF]["pending"]) == ["m2"]


# --- values live in the journal --------------------------------------------------------------------


def test_value_changes_never_rewrite_the_main_file(store: JsonFileStore) -> None:
    store.accept_page(KF, "c1", [item(f"m{i}") for i in range(100)])
    writes, main = store.write_count, store.path.read_bytes()
    store.set_value("takeover:wmUSER", "zhangsan", None)
    store.set_value("plan:m1", "p1", 60)
    store.set_value("plan:m1", "p2", 60)
    store.set_value("takeover:wmUSER", None, None)
    assert store.write_count == writes
    assert store.path.read_bytes() == main
    assert journal_records(store.directory) == [
        ["k", "takeover:wmUSER", "zhangsan", None],
        ["k", "plan:m1", "p1", T0 + 60],
        ["k", "plan:m1", "p2", T0 + 60],
        ["k", "takeover:wmUSER", None, None],
    ]


def test_deleting_a_missing_value_writes_nothing(store: JsonFileStore) -> None:
    store.set_value("a", "1", None)
    appends, size = store.journal.append_count, os.path.getsize(store.directory / JOURNAL_NAME)
    store.set_value("never-set", None, None)
    store.set_value("a", None, None)
    store.set_value("a", None, None)  # already deleted
    assert store.journal.append_count == appends + 1
    assert len(journal_records(store.directory)) == 2
    assert os.path.getsize(store.directory / JOURNAL_NAME) > size


def test_values_survive_compaction_and_deleted_ones_stay_deleted(tmp_path: Path) -> None:
    clock = FakeClock()
    store = JsonFileStore(tmp_path, clock=clock)
    store.set_value("keep", "1", None)
    store.set_value("brief", "2", 10)
    store.set_value("gone", "3", None)
    store.set_value("gone", None, None)
    clock.now += 11
    store.compact()
    assert journal_records(tmp_path) == [["k", "keep", "1", None]]
    store.close()
    again = JsonFileStore(tmp_path, clock=clock)
    assert (again.get_value("keep"), again.get_value("brief"), again.get_value("gone")) == ("1", None, None)
    again.close()


# --- real write failures -------------------------------------------------------------------------------


def test_failed_main_write_keeps_the_old_file_and_rolls_back(tmp_path: Path) -> None:
    store = JsonFileStore(tmp_path)
    store.accept_page(KF, "c1", [item("m1")])
    before = store.path.read_bytes()
    big = item("m2", text="x" * 8192)  # the new main file cannot be written within the limit
    with file_size_limit(4096), pytest.raises(StoreUnavailable):
        store.accept_page(KF, "c2", [big], owner="host-a", lease_seconds=LONG)
    assert store.path.read_bytes() == before
    assert list(tmp_path.glob(".*.tmp")) == []
    # Not durable means not accepted: nothing of the call is left, and the caller may repeat it.
    assert store.load_cursor(KF) == "c1"
    assert ids(store.pending(KF)) == ["m1"]
    assert ids(store.claim_pending(KF, "host-b", LONG)) == ["m1"]  # no claim of host-a on anything
    restarted = JsonFileStore(tmp_path)
    assert (restarted.load_cursor(KF), ids(restarted.pending(KF))) == ("c1", ["m1"])
    restarted.close()
    assert store.accept_page(KF, "c2", [big], owner="host-a", lease_seconds=LONG) == [big]
    assert store.load_cursor(KF) == "c2"
    store.close()
    again = JsonFileStore(tmp_path)
    assert (again.load_cursor(KF), ids(again.pending(KF))) == ("c2", ["m1", "m2"])
    again.close()


def test_failed_finish_raises_and_is_written_by_the_next_flush(tmp_path: Path) -> None:
    store = JsonFileStore(tmp_path)
    store.accept_page(KF, "c1", [item("m1"), item("m2")], skipped_ids=[f"s{i:04}" for i in range(200)])
    journal = tmp_path / JOURNAL_NAME
    before = journal.read_bytes()
    with file_size_limit(len(before) + 5):  # the append is cut at the limit, then fails
        with pytest.raises(StoreUnavailable):
            store.finish(KF, "m1")
        with pytest.raises(StoreUnavailable):
            store.set_value("takeover:wmUSER", "zhangsan", None)
    assert journal.read_bytes() == before  # the partial line was cut back off
    restarted = JsonFileStore(tmp_path)  # as after a crash now: m1 is not done, the value not set
    assert (ids(restarted.pending(KF)), restarted.get_value("takeover:wmUSER")) == (["m1", "m2"], None)
    restarted.close()
    store.flush()  # the queued lines were kept and are written now
    again = JsonFileStore(tmp_path)
    assert ids(again.pending(KF)) == ["m2"]
    assert again.get_value("takeover:wmUSER") == "zhangsan"
    again.close()
    store.close()


def test_journal_path_that_is_a_directory_fails_every_write(tmp_path: Path) -> None:
    # A failure root cannot bypass either: appending to a directory is EISDIR for everybody.
    store = JsonFileStore(tmp_path)
    store.accept_page(KF, "c1", [item("m1")])
    store.compact()  # closes the journal's descriptor; the next append opens the path again
    (tmp_path / JOURNAL_NAME).unlink()
    (tmp_path / JOURNAL_NAME).mkdir()
    with pytest.raises(StoreUnavailable):
        store.finish(KF, "m1")
    with pytest.raises(StoreUnavailable):
        store.accept_page(KF, "c2", [item("m2")], skipped_ids=["s1"])
    assert store.load_cursor(KF) == "c1"
    (tmp_path / JOURNAL_NAME).rmdir()
    store.flush()
    assert journal_ids(tmp_path) == ["m1"]
    assert ids(store.accept_page(KF, "c2", [item("m2")], skipped_ids=["s1"])) == ["m2"]
    store.close()


# --- migration of older main files ------------------------------------------------------------------


def test_upstream_cursor_file_is_migrated(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_text(json.dumps({KF: "upstream-cursor", "wkOTHER": "c9", "wkNEW": None}))
    store = JsonFileStore(tmp_path)
    assert store.load_cursor(KF) == "upstream-cursor"
    assert store.load_cursor("wkOTHER") == "c9"
    assert store.load_cursor("wkNEW") is None
    assert store.known_accounts() == [KF, "wkOTHER"]  # not wkNEW: no cursor
    assert store.pending(KF) == []
    doc = on_disk(tmp_path)
    assert doc["version"] == FORMAT_VERSION
    assert doc["accounts"][KF] == {"cursor": "upstream-cursor", "pending": []}
    store.close()


def test_version_1_file_moves_done_ids_and_flags_to_the_journal(tmp_path: Path) -> None:
    doc = {
        "version": 1,
        "accounts": {KF: {"cursor": "c7", "pending": [item("p1")]}},
        "done": {"gone": T0 - 1, "live": T0 + 100},
        "flags": {"takeover:wmUSER": {"value": "zhangsan", "expires_at": None}},
    }
    (tmp_path / FILE_NAME).write_text(json.dumps(doc))
    store = JsonFileStore(tmp_path, clock=FakeClock())
    assert journal_records(tmp_path) == [["live", T0 + 100], ["k", "takeover:wmUSER", "zhangsan", None]]
    assert on_disk(tmp_path) == {
        "version": FORMAT_VERSION,
        "accounts": {KF: {"cursor": "c7", "pending": [item("p1")]}},
    }
    assert store.get_value("takeover:wmUSER") == "zhangsan"
    accepted = store.accept_page(KF, "c8", [item("live"), item("gone"), item("p1")])
    assert ids(accepted) == ["gone"]
    store.close()


def test_version_2_file_moves_its_flags_to_the_journal(tmp_path: Path) -> None:
    clock = FakeClock()
    doc = {
        "version": 2,
        "accounts": {KF: {"cursor": "c5", "pending": [item("p1"), item("p2")]}},
        "flags": {
            "takeover:wmUSER": {"value": "zhangsan", "expires_at": None},
            "plan:m1": {"value": '{"parts": 2}', "expires_at": T0 + 50},
            "plan:old": {"value": "x", "expires_at": T0 - 1},
        },
    }
    (tmp_path / FILE_NAME).write_text(json.dumps(doc))
    store = JsonFileStore(tmp_path, clock=clock)
    assert on_disk(tmp_path) == {
        "version": FORMAT_VERSION,
        "accounts": {KF: {"cursor": "c5", "pending": [item("p1"), item("p2")]}},
    }
    assert journal_records(tmp_path) == [
        ["k", "takeover:wmUSER", "zhangsan", None],
        ["k", "plan:m1", '{"parts": 2}', T0 + 50],
    ]
    assert store.get_value("takeover:wmUSER") == "zhangsan"
    assert store.get_value("plan:m1") == '{"parts": 2}'
    assert store.get_value("plan:old") is None
    assert (store.load_cursor(KF), ids(store.pending(KF))) == ("c5", ["p1", "p2"])
    writes = store.write_count
    store.set_value("takeover:wmUSER", None, None)  # from now on a value change is a journal line
    assert store.write_count == writes
    store.close()
    again = JsonFileStore(tmp_path, clock=clock)
    assert again.get_value("takeover:wmUSER") is None
    assert again.get_value("plan:m1") == '{"parts": 2}'
    clock.now += 51
    assert again.get_value("plan:m1") is None
    again.close()


def test_flags_reach_the_journal_before_the_main_file_drops_them(tmp_path: Path) -> None:
    doc = {
        "version": 2,
        "accounts": {KF: {"cursor": "c5", "pending": [item("p1", text="x" * 8192)]}},
        "flags": {"takeover:wmUSER": {"value": "zhangsan", "expires_at": None}},
    }
    original = json.dumps(doc).encode()
    (tmp_path / FILE_NAME).write_bytes(original)
    with file_size_limit(4096), pytest.raises(StoreUnavailable):
        JsonFileStore(tmp_path)  # the journal append fits, the rewritten main file does not
    assert (tmp_path / FILE_NAME).read_bytes() == original
    assert journal_records(tmp_path) == [["k", "takeover:wmUSER", "zhangsan", None]]
    store = JsonFileStore(tmp_path)  # the next start finishes the migration
    assert store.get_value("takeover:wmUSER") == "zhangsan"
    assert on_disk(tmp_path)["version"] == FORMAT_VERSION
    assert journal_records(tmp_path) == [["k", "takeover:wmUSER", "zhangsan", None]]  # not twice
    store.close()


def test_unreadable_file_fails_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_text('{"version": 3, "accounts": {')
    with pytest.raises(StoreError, match=FILE_NAME):
        JsonFileStore(tmp_path)
    (tmp_path / FILE_NAME).write_text('{"version": 7}')
    with pytest.raises(StoreError, match="version"):
        JsonFileStore(tmp_path)
    (tmp_path / FILE_NAME).write_text("[1, 2]")
    with pytest.raises(StoreError, match="unknown format"):
        JsonFileStore(tmp_path)


def test_items_without_msgid_are_rejected(store: JsonFileStore) -> None:
    with pytest.raises(ValueError):
        store.accept_page(KF, "c", [{"msgtype": "text"}])
    assert store.load_cursor(KF) is None


# --- in-memory claims, locks, pull requests --------------------------------------------------------


def test_claims_and_pull_requests_do_not_survive_a_restart(tmp_path: Path) -> None:
    # One process uses the files: after a restart nobody holds anything, so all pending is claimable.
    store = JsonFileStore(tmp_path)
    store.accept_page(KF, "c", [item("m1")], owner="old-process", lease_seconds=LONG)
    store.accept_page(KF, "c", [item("m2")])
    assert store.try_lock(KF, "old-process", LONG)
    store.request_pull(KF, "token")
    store.close()
    again = JsonFileStore(tmp_path)
    assert ids(again.claim_pending(KF, "new-process", LONG)) == ["m1", "m2"]
    assert again.try_lock(KF, "new-process", LONG)
    assert again.take_pull_request(KF) is None
    again.close()


def test_pull_request_expires_with_the_callback_token(tmp_path: Path) -> None:
    clock = FakeClock()
    store = JsonFileStore(tmp_path, clock=clock)
    store.request_pull(KF, "token-1")
    clock.now += PULL_REQUEST_TTL_SECONDS - 1
    assert store.take_pull_request(KF) == "token-1"
    store.request_pull(KF, "token-2")
    clock.now += PULL_REQUEST_TTL_SECONDS + 1
    assert store.take_pull_request(KF) is None
    store.request_pull(KF, "token-3")
    clock.now += PULL_REQUEST_TTL_SECONDS + 1
    store.maintain()  # pruned by housekeeping: still gone
    assert store.take_pull_request(KF) is None
    store.close()
