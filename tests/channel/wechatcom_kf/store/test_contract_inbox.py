"""The Inbox contract without claims (cursor, dedup, pending, finish, accounts, durability), run against
every backend: a JSON file and a real Redis. Claims are in test_contract_claims.py."""

from __future__ import annotations

import threading
from typing import Any

from channel.wechatcom_kf.store import AccountLocks, Inbox, KeyValues, StateStore
from tests.channel.wechatcom_kf.store.store_helpers import KF, KF2, KF3, Backend, ids, item


def test_implements_every_interface(backend: Backend) -> None:
    store = backend.make()
    for protocol in (Inbox, AccountLocks, KeyValues, StateStore):
        assert isinstance(store, protocol)


def test_cursor_round_trip_per_account(backend: Backend) -> None:
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
    assert store.load_cursor(KF3) is None


def test_accept_page_dedups_within_and_across_pages(backend: Backend) -> None:
    store = backend.make()
    first = store.accept_page(KF, "c1", [item("m1"), item("m2"), item("m1", text="again")])
    assert first == [item("m1"), item("m2")]  # the first copy wins, unicode intact
    second = store.accept_page(KF, "c2", [item("m2"), item("m3")])
    assert ids(second) == ["m3"]
    assert store.pending(KF) == [item("m1"), item("m2"), item("m3")]


def test_pending_is_oldest_first_and_per_account(backend: Backend) -> None:
    store = backend.make()
    store.accept_page(KF, "c1", [item("z9"), item("a1")])
    store.accept_page(KF2, "x", [item("k1", KF2)])
    store.accept_page(KF, "c2", [item("b5"), item("m0")])
    assert ids(store.pending(KF)) == ["z9", "a1", "b5", "m0"]
    assert ids(store.pending(KF2)) == ["k1"]
    assert store.pending(KF3) == []


def test_the_store_keeps_its_own_copy_of_each_item(backend: Backend) -> None:
    # What a caller does with the dicts it passed in or got back cannot change what is pending (or,
    # for the JSON store, what the next main-file write serializes, under the store's lock or not).
    store = backend.make()
    page = [item("m1")]
    accepted = store.accept_page(KF, "c", page)
    accepted[0]["text"]["content"] = "changed in the returned item"
    store.pending(KF)[0]["text"]["content"] = "changed in a pending() result"
    page[0]["text"]["content"] = "changed in the page passed in"
    assert store.pending(KF) == [item("m1")]


def test_known_accounts_lists_accounts_with_a_cursor_or_pending_items(backend: Backend) -> None:
    store = backend.make()
    assert store.known_accounts() == []
    store.accept_page(KF3, "c", [])  # a cursor only
    store.accept_page(KF, "c", [item("m1")])
    store.accept_page(KF2, None, [item("k1", KF2)])  # pending items only
    assert store.known_accounts() == [KF, KF2, KF3]  # sorted
    store.finish(KF, "m1")
    assert store.known_accounts() == [KF, KF2, KF3]  # KF still has its cursor


def test_known_accounts_leaves_out_accounts_with_neither_cursor_nor_pending(backend: Backend) -> None:
    store = backend.make()
    store.accept_page(KF, "c", [])
    store.accept_page(KF2, None, [], skipped_ids=["s1"])  # neither a cursor nor anything pending
    store.accept_page(KF3, None, [item("k3", KF3)])
    store.finish(KF3, "k3")  # its only pending item is done, and it never had a cursor
    assert store.known_accounts() == [KF]


def test_pending_accounts_lists_exactly_the_accounts_with_pending_items(backend: Backend) -> None:
    store = backend.make()
    assert store.pending_accounts() == []
    store.accept_page(KF2, "c", [item("k1", KF2)])
    store.accept_page(KF, "c", [item("m1"), item("m2")])
    store.accept_page(KF3, "c", [], skipped_ids=["s1"])  # a cursor and done ids, nothing pending
    assert store.pending_accounts() == [KF, KF2]
    store.finish(KF, "m1")
    assert store.pending_accounts() == [KF, KF2]
    store.finish(KF, "m2")
    assert store.pending_accounts() == [KF2]
    store.finish(KF2, "k1")
    assert store.pending_accounts() == []


def test_finish_removes_from_pending_and_dedups_later_pages(backend: Backend) -> None:
    store = backend.make()
    store.accept_page(KF, "c1", [item("m1"), item("m2")])
    store.finish(KF, "m1")
    assert ids(store.pending(KF)) == ["m2"]
    assert store.accept_page(KF, "c2", [item("m1"), item("m3")]) == [item("m3")]
    assert ids(store.pending(KF)) == ["m2", "m3"]
    store.finish(KF, "m1")  # finishing twice is harmless
    assert ids(store.pending(KF)) == ["m2", "m3"]


def test_finish_of_unknown_id_blocks_it_later(backend: Backend) -> None:
    store = backend.make()
    store.finish(KF, "never-seen")
    assert store.accept_page(KF, "c", [item("never-seen")]) == []
    assert store.pending(KF) == []


def test_skipped_ids_are_done_not_pending(backend: Backend) -> None:
    store = backend.make()
    accepted = store.accept_page(KF, "c1", [item("new")], skipped_ids=["old1", "old2"])
    assert ids(accepted) == ["new"]
    assert ids(store.pending(KF)) == ["new"]
    assert store.accept_page(KF, "c2", [item("old1"), item("old2")]) == []


def test_skipping_a_pending_id_does_not_finish_it(backend: Backend) -> None:
    store = backend.make()
    store.accept_page(KF, "c1", [item("m1")])
    store.accept_page(KF, "c2", [], skipped_ids=["m1"])
    assert ids(store.pending(KF)) == ["m1"]


def test_done_ids_expire_after_ttl(backend: Backend) -> None:
    store = backend.make(done_ttl_seconds=backend.short_ttl)
    store.accept_page(KF, "c1", [item("m1")], skipped_ids=["s1"])
    store.finish(KF, "m1")
    assert store.accept_page(KF, "c2", [item("m1"), item("s1")]) == []
    backend.advance(backend.short_ttl * 3)
    store.maintain()  # housekeeping must not change the outcome
    assert ids(store.accept_page(KF, "c3", [item("m1"), item("s1")])) == ["m1", "s1"]


def test_done_ids_are_per_account(backend: Backend) -> None:
    store = backend.make()
    store.accept_page(KF, "c1", [item("m1")], skipped_ids=["s1"])
    store.finish(KF, "m1")
    # The same msgids in another account are that account's messages: not done there.
    assert ids(store.accept_page(KF2, "d1", [item("m1", KF2), item("s1", KF2)])) == ["m1", "s1"]
    assert store.accept_page(KF, "c2", [item("m1"), item("s1")]) == []
    store.finish(KF2, "m1")
    assert ids(store.pending(KF2)) == ["s1"]
    again = backend.make()  # and so after a restart
    assert again.accept_page(KF2, "d2", [item("m1", KF2)]) == []
    assert ids(again.accept_page(KF3, "e1", [item("m1", KF3)])) == ["m1"]


def test_pending_ids_do_not_expire(backend: Backend) -> None:
    store = backend.make(done_ttl_seconds=backend.short_ttl)
    store.accept_page(KF, "c1", [item("m1")])
    backend.advance(backend.short_ttl * 3)
    store.maintain()
    assert store.accept_page(KF, "c2", [item("m1")]) == []
    assert ids(store.pending(KF)) == ["m1"]


def test_concurrent_accept_page_accepts_each_msgid_once(backend: Backend) -> None:
    store = backend.make()
    page = [item(f"m{i}") for i in range(50)]
    results: list[list[dict[str, Any]]] = [[], [], [], []]
    barrier = threading.Barrier(len(results))

    def run(slot: int) -> None:
        barrier.wait(timeout=5)
        results[slot] = store.accept_page(KF, f"c{slot}", page)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    accepted = [msgid for result in results for msgid in ids(result)]
    assert sorted(accepted) == sorted(ids(page))
    assert ids(store.pending(KF)) == ids(page)


def test_state_is_durable_without_close(backend: Backend) -> None:
    # A second store opened while the first is still open sees everything the first returned from:
    # what a crash right after those calls would leave.
    store = backend.make()
    store.accept_page(KF, "c1", [item("m1"), item("m2"), item("m3")], skipped_ids=["s1"])
    store.accept_page(KF2, "k", [item("k1", KF2)])
    store.finish(KF, "m2")
    again = backend.make()
    assert again.load_cursor(KF) == "c1"
    assert again.load_cursor(KF2) == "k"
    assert ids(again.pending(KF)) == ["m1", "m3"]
    assert again.known_accounts() == [KF, KF2]
    assert again.accept_page(KF, "c2", [item("m2"), item("s1"), item("m4")]) == [item("m4")]


def test_state_survives_close_and_reopen(backend: Backend) -> None:
    store = backend.make()
    store.accept_page(KF, "c1", [item("m1"), item("m2")])
    store.finish(KF, "m1")
    store.close()
    again = backend.make()
    assert again.load_cursor(KF) == "c1"
    assert ids(again.pending(KF)) == ["m2"]
    assert again.pending_accounts() == [KF]
    assert again.accept_page(KF, "c2", [item("m1")]) == []


def test_flush_maintain_and_close_are_safe_to_repeat(backend: Backend) -> None:
    store = backend.make()
    store.accept_page(KF, "c", [item("m1")])
    store.finish(KF, "m1")
    for _ in range(2):
        store.flush()
        store.maintain()
    store.close()
    store.close()
    assert backend.make().accept_page(KF, "c", [item("m1")]) == []
