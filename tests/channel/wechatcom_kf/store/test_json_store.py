"""JsonFileStore specifics: file safety, upstream migration, group commit, pruning, in-memory claims.

The done-id journal has its own tests in test_json_journal.py.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from channel.wechatcom_kf.store import PULL_REQUEST_TTL_SECONDS, JsonFileStore, StoreError
from channel.wechatcom_kf.store.journal import JOURNAL_NAME
from channel.wechatcom_kf.store.main_file import FILE_NAME, FORMAT_VERSION

KF = "wkAAAA"


def item(msgid: str) -> dict[str, Any]:
    return {"msgid": msgid, "open_kfid": KF, "origin": 3, "msgtype": "text", "text": {"content": "hi"}}


def on_disk(directory: Path) -> dict[str, Any]:
    return json.loads((directory / FILE_NAME).read_text("utf-8"))


def journal_ids(directory: Path) -> list[str]:
    path = directory / JOURNAL_NAME
    if not path.exists():
        return []
    return [json.loads(line)[0] for line in path.read_text("ascii").splitlines() if line]


@pytest.fixture
def store(tmp_path: Path):
    s = JsonFileStore(tmp_path / "state", commit_delay=0.01)
    yield s
    s.close()


def test_files_are_private(tmp_path: Path, store: JsonFileStore):
    store.accept_page(KF, "c1", [item("m1")], skipped_ids=["s1"])
    store.finish("m1")
    store.flush()
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.directory / JOURNAL_NAME).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.directory).st_mode) & 0o077 == 0


def test_existing_public_file_becomes_private(tmp_path: Path):
    path = tmp_path / FILE_NAME
    path.write_text(json.dumps({KF: "c0"}))
    os.chmod(path, 0o644)
    JsonFileStore(tmp_path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_accept_page_is_on_disk_when_it_returns(store: JsonFileStore):
    store.accept_page(KF, "c1", [item("m1")], skipped_ids=["old"])
    doc = on_disk(store.directory)
    assert doc["accounts"][KF]["cursor"] == "c1"
    assert [it["msgid"] for it in doc["accounts"][KF]["pending"]] == ["m1"]
    assert "done" not in doc  # done ids live in the journal only
    assert journal_ids(store.directory) == ["old"]


def test_finish_reaches_disk_without_flush(store: JsonFileStore):
    store.accept_page(KF, "c1", [item("m1")])
    store.finish("m1")
    # Bounded wait for the background group commit (no flush() called).
    for _ in range(200):
        if "m1" in journal_ids(store.directory):
            break
        store._wake.wait(0.01)
    assert journal_ids(store.directory) == ["m1"]


def test_group_commit_batches_finishes_into_few_appends(store: JsonFileStore):
    for page in range(10):
        store.accept_page(KF, f"c{page}", [item(f"m{page}-{i}") for i in range(1000)])
    assert store.write_count == 10
    for page in range(10):
        for i in range(1000):
            store.finish(f"m{page}-{i}")
    store.flush()
    appends = store.journal.append_count
    print(f"10000 finish() calls -> {appends} journal appends")
    assert 1 <= appends < 1000
    assert store.write_count == 10  # finish never rewrites the main file
    assert store.pending(KF) == []
    assert len(journal_ids(store.directory)) == 10_000


def test_leftover_temp_files_are_ignored_and_removed(tmp_path: Path):
    first = JsonFileStore(tmp_path)
    first.accept_page(KF, "c1", [item("m1")])
    first.close()
    leftover = tmp_path / f".{FILE_NAME}.99999.tmp"
    leftover.write_bytes(b'{"version": 2, "accounts": {"wkAAAA": {"cur')  # a write cut short
    journal_leftover = tmp_path / f".{JOURNAL_NAME}.99999.tmp"
    journal_leftover.write_bytes(b'["m1",17')  # a compaction cut short
    second = JsonFileStore(tmp_path)
    assert second.load_cursor(KF) == "c1"
    assert [it["msgid"] for it in second.pending(KF)] == ["m1"]
    assert not leftover.exists()
    assert not journal_leftover.exists()
    second.close()


def test_failed_write_keeps_old_file_and_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store = JsonFileStore(tmp_path)
    store.accept_page(KF, "c1", [item("m1")])
    before = (tmp_path / FILE_NAME).read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        store.accept_page(KF, "c2", [item("m2")])
    monkeypatch.undo()
    assert (tmp_path / FILE_NAME).read_bytes() == before
    assert list(tmp_path.glob(".*.tmp")) == []
    # Not durable means not accepted: the caller may retry the same page.
    assert store.load_cursor(KF) == "c1"
    assert [it["msgid"] for it in store.accept_page(KF, "c2", [item("m2")])] == ["m2"]
    store.close()


def test_crash_between_write_and_replace_keeps_old_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store = JsonFileStore(tmp_path)
    store.accept_page(KF, "c1", [item("m1")])

    def crash(src: object, dst: object) -> None:
        raise KeyboardInterrupt  # stands for the process dying right here

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        store.accept_page(KF, "c2", [item("m2")])
    monkeypatch.undo()
    reopened = JsonFileStore(tmp_path)
    assert reopened.load_cursor(KF) == "c1"
    assert [it["msgid"] for it in reopened.pending(KF)] == ["m1"]
    reopened.close()
    store.close()


def test_upstream_cursor_file_is_migrated(tmp_path: Path):
    (tmp_path / FILE_NAME).write_text(json.dumps({KF: "upstream-cursor", "wkOTHER": "c9"}))
    store = JsonFileStore(tmp_path)
    assert store.load_cursor(KF) == "upstream-cursor"
    assert store.load_cursor("wkOTHER") == "c9"
    assert store.pending(KF) == []
    doc = on_disk(tmp_path)
    assert doc["version"] == FORMAT_VERSION
    assert doc["accounts"][KF]["cursor"] == "upstream-cursor"
    store.close()


def test_unreadable_file_fails_with_a_clear_message(tmp_path: Path):
    (tmp_path / FILE_NAME).write_text('{"version": 1, "accounts": {')
    with pytest.raises(StoreError, match=FILE_NAME):
        JsonFileStore(tmp_path)
    (tmp_path / FILE_NAME).write_text('{"version": 7}')
    with pytest.raises(StoreError, match="version"):
        JsonFileStore(tmp_path)


def test_version_1_file_moves_its_done_ids_to_the_journal(tmp_path: Path):
    now = 1_700_000_000.0
    doc = {
        "version": 1,
        "accounts": {KF: {"cursor": "c7", "pending": [item("p1")]}},
        "done": {"gone": now - 1, "live": now + 100},
        "flags": {"takeover:wmUSER": {"value": "zhangsan", "expires_at": None}},
    }
    (tmp_path / FILE_NAME).write_text(json.dumps(doc))
    store = JsonFileStore(tmp_path, clock=lambda: now)
    assert journal_ids(tmp_path) == ["live"]
    rewritten = on_disk(tmp_path)
    assert rewritten["version"] == FORMAT_VERSION and "done" not in rewritten
    assert store.load_cursor(KF) == "c7"
    assert store.get_flag("takeover:wmUSER") == "zhangsan"
    assert [it["msgid"] for it in store.accept_page(KF, "c8", [item("live"), item("gone"), item("p1")])] == [
        "gone"
    ]
    store.close()


def test_items_without_msgid_are_rejected(store: JsonFileStore):
    with pytest.raises(ValueError):
        store.accept_page(KF, "c", [{"msgtype": "text"}])
    assert store.load_cursor(KF) is None


def test_finish_after_close_is_still_written(tmp_path: Path):
    store = JsonFileStore(tmp_path)
    store.accept_page(KF, "c", [item("m1")])
    store.close()
    store.finish("m1")
    assert journal_ids(tmp_path) == ["m1"]


def test_claims_and_pull_requests_do_not_survive_a_restart(tmp_path: Path):
    # One process uses the files: after a restart nobody holds anything, so all pending is claimable.
    store = JsonFileStore(tmp_path)
    store.accept_page(KF, "c", [item("m1")], owner="old-process", lease_seconds=3600)
    store.accept_page(KF, "c", [item("m2")])
    assert [it["msgid"] for it in store.claim_pending(KF, "old-process", 3600)] == ["m2"]
    store.request_pull(KF, "token")
    store.close()
    again = JsonFileStore(tmp_path)
    assert [it["msgid"] for it in again.claim_pending(KF, "new-process", 3600)] == ["m1", "m2"]
    assert again.take_pull_request(KF) is None
    again.close()


def test_pull_request_expires_with_the_callback_token(tmp_path: Path):
    now = [1_700_000_000.0]
    store = JsonFileStore(tmp_path, clock=lambda: now[0])
    store.request_pull(KF, "token-1")
    now[0] += PULL_REQUEST_TTL_SECONDS - 1
    assert store.take_pull_request(KF) == "token-1"
    store.request_pull(KF, "token-2")
    now[0] += PULL_REQUEST_TTL_SECONDS + 1
    assert store.take_pull_request(KF) is None
    store.close()


def test_failed_accept_leaves_no_claim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store = JsonFileStore(tmp_path)

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        store.accept_page(KF, "c", [item("m1")], owner="host-a", lease_seconds=3600)
    monkeypatch.undo()
    store.accept_page(KF, "c", [item("m1")])  # the retry, without an owner this time
    assert [it["msgid"] for it in store.claim_pending(KF, "host-b", 3600)] == ["m1"]
    store.close()
