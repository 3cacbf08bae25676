"""The StateStore contract, run against every backend (JSON file and a real Redis)."""

from __future__ import annotations

import threading
from typing import Any

from channel.wechatcom_kf.store import StateStore

KF = "wkAAAA"
KF2 = "wkBBBB"


def item(msgid: str, text: str = "你好", kfid: str = KF) -> dict[str, Any]:
    return {
        "msgid": msgid,
        "open_kfid": kfid,
        "external_userid": "wmUSER",
        "send_time": 1_700_000_000,
        "origin": 3,
        "msgtype": "text",
        "text": {"content": text},
    }


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [it["msgid"] for it in items]


def test_implements_protocol(backend):
    assert isinstance(backend.make(), StateStore)


def test_cursor_round_trip_per_account(backend):
    store = backend.make()
    assert store.load_cursor(KF) is None
    store.accept_page(KF, "cursor-1", [])
    store.accept_page(KF2, "other", [])
    assert store.load_cursor(KF) == "cursor-1"
    store.accept_page(KF, "cursor-2", [])
    assert store.load_cursor(KF) == "cursor-2"
    assert store.load_cursor(KF2) == "other"
    store.accept_page(KF, None, [item("m0")])  # None keeps the cursor
    assert store.load_cursor(KF) == "cursor-2"


def test_accept_page_dedups_within_and_across_pages(backend):
    store = backend.make()
    first = store.accept_page(KF, "c1", [item("m1"), item("m2"), item("m1", "again")])
    assert ids(first) == ["m1", "m2"]
    assert first[0]["text"]["content"] == "你好"
    second = store.accept_page(KF, "c2", [item("m2"), item("m3")])
    assert ids(second) == ["m3"]
    assert ids(store.pending(KF)) == ["m1", "m2", "m3"]


def test_pending_is_oldest_first_and_per_account(backend):
    store = backend.make()
    store.accept_page(KF, "c1", [item("z9"), item("a1")])
    store.accept_page(KF2, "x", [item("k1", kfid=KF2)])
    store.accept_page(KF, "c2", [item("b5")])
    assert ids(store.pending(KF)) == ["z9", "a1", "b5"]
    assert ids(store.pending(KF2)) == ["k1"]
    assert store.pending("wkNONE") == []


def test_finish_removes_from_pending_and_keeps_seen(backend):
    store = backend.make()
    store.accept_page(KF, "c1", [item("m1"), item("m2")])
    store.finish("m1")
    assert ids(store.pending(KF)) == ["m2"]
    assert store.accept_page(KF, "c2", [item("m1"), item("m3")]) == [item("m3")]
    assert ids(store.pending(KF)) == ["m2", "m3"]


def test_finish_of_unknown_id_blocks_it_later(backend):
    store = backend.make()
    store.finish("never-seen")
    assert store.accept_page(KF, "c", [item("never-seen")]) == []


def test_skipped_ids_are_done_not_pending(backend):
    store = backend.make()
    accepted = store.accept_page(KF, "c1", [item("new")], skipped_ids=["old1", "old2"])
    assert ids(accepted) == ["new"]
    assert ids(store.pending(KF)) == ["new"]
    assert store.accept_page(KF, "c2", [item("old1"), item("old2")]) == []


def test_concurrent_accept_page_accepts_each_msgid_once(backend):
    store = backend.make()
    page = [item(f"m{i}") for i in range(50)]
    results: list[list[dict[str, Any]]] = [[], []]
    barrier = threading.Barrier(2)

    def run(slot: int) -> None:
        barrier.wait(timeout=5)
        results[slot] = store.accept_page(KF, f"c{slot}", page)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    accepted = ids(results[0]) + ids(results[1])
    assert sorted(accepted) == sorted(ids(page))
    assert ids(store.pending(KF)) == ids(page)


def test_state_survives_a_new_store_instance(backend):
    store = backend.make()
    store.accept_page(KF, "c1", [item("m1"), item("m2"), item("m3")], skipped_ids=["s1"])
    store.finish("m2")
    store.set_flag("takeover:wmUSER", "zhangsan", None)
    store.close()
    again = backend.make()
    assert again.load_cursor(KF) == "c1"
    assert ids(again.pending(KF)) == ["m1", "m3"]
    assert again.get_flag("takeover:wmUSER") == "zhangsan"
    assert again.accept_page(KF, "c2", [item("m2"), item("s1"), item("m4")]) == [item("m4")]


def test_done_ids_expire_after_ttl(backend):
    store = backend.make(done_ttl_seconds=backend.short_ttl)
    store.accept_page(KF, "c1", [item("m1")], skipped_ids=["s1"])
    store.finish("m1")
    assert store.accept_page(KF, "c2", [item("m1"), item("s1")]) == []
    backend.advance(backend.short_ttl * 3)
    assert ids(store.accept_page(KF, "c3", [item("m1"), item("s1")])) == ["m1", "s1"]


def test_pending_ids_do_not_expire(backend):
    store = backend.make(done_ttl_seconds=backend.short_ttl)
    store.accept_page(KF, "c1", [item("m1")])
    backend.advance(backend.short_ttl * 3)
    assert store.accept_page(KF, "c2", [item("m1")]) == []
    assert ids(store.pending(KF)) == ["m1"]


def test_flags_set_clear_and_expire(backend):
    store = backend.make()
    assert store.get_flag("a") is None
    store.set_flag("a", "1", None)
    store.set_flag("b", "2", backend.short_ttl)
    assert (store.get_flag("a"), store.get_flag("b")) == ("1", "2")
    backend.advance(backend.short_ttl * 3)
    assert (store.get_flag("a"), store.get_flag("b")) == ("1", None)
    store.set_flag("a", None, None)
    assert store.get_flag("a") is None


def test_lock_is_exclusive_and_owner_only(backend):
    store = backend.make()
    assert store.try_lock(KF, "owner-1", 30)
    assert not store.try_lock(KF, "owner-2", 30)
    assert store.try_lock(KF2, "owner-2", 30)  # other accounts are independent
    assert store.try_lock(KF, "owner-1", 30)  # the owner may extend
    store.unlock(KF, "owner-2")  # not the owner: no effect
    assert not store.try_lock(KF, "owner-2", 30)
    store.unlock(KF, "owner-1")
    assert store.try_lock(KF, "owner-2", 30)


def test_lock_expires(backend):
    store = backend.make()
    assert store.try_lock(KF, "owner-1", backend.short_ttl)
    backend.advance(backend.short_ttl * 3)
    assert store.try_lock(KF, "owner-2", 30)
    store.unlock(KF, "owner-1")  # the old owner's late unlock must not free the new lock
    assert not store.try_lock(KF, "owner-3", 30)


def test_flush_and_close_are_safe_to_repeat(backend):
    store = backend.make()
    store.accept_page(KF, "c", [item("m1")])
    store.finish("m1")
    store.flush()
    store.flush()
    store.close()
    store.close()
    assert backend.make().accept_page(KF, "c", [item("m1")]) == []
