"""The Inbox contract for work shared between instances: claims with leases on pending items, claims
made by ``accept_page``, repeated accepts, renewals. Runs against every backend (JSON file, real Redis)."""

from __future__ import annotations

import threading
import time

from tests.channel.wechatcom_kf.store.store_helpers import KF, KF2, KF3, LONG, Backend, ids, item


def test_claim_takes_pending_items_oldest_first_and_skips_others_live_claims(backend: Backend) -> None:
    store = backend.make()
    store.accept_page(KF, "c", [item("z9"), item("a1")], owner="host-a", lease_seconds=LONG)
    store.accept_page(KF, "c", [item("b5"), item("c7")])
    store.accept_page(KF2, "c", [item("k1", KF2)])
    assert store.claim_pending(KF, "host-b", LONG) == [item("b5"), item("c7")]
    assert store.claim_pending(KF, "host-c", LONG) == []  # every item is under a live claim
    assert ids(store.claim_pending(KF2, "host-c", LONG)) == ["k1"]  # accounts are independent
    assert ids(store.pending(KF)) == ["z9", "a1", "b5", "c7"]  # claimed items are still pending
    assert store.claim_pending(KF3, "host-a", LONG) == []


def test_claim_leaves_out_the_owners_own_live_claims(backend: Backend) -> None:
    """Every pull job claims first: items the owner is handling must not come back each time."""
    store = backend.make()
    store.accept_page(KF, "c", [item("m1"), item("m2")], owner="host-a", lease_seconds=LONG)
    store.accept_page(KF, "c", [item("m3")])
    assert ids(store.claim_pending(KF, "host-b", LONG)) == ["m3"]
    assert store.claim_pending(KF, "host-a", LONG) == []
    assert store.claim_pending(KF, "host-b", LONG) == []


def test_an_owners_expired_claim_can_be_taken_again_by_it(backend: Backend) -> None:
    store = backend.make()
    store.accept_page(KF, "c", [item("m1")])
    assert ids(store.claim_pending(KF, "host-a", backend.short_ttl)) == ["m1"]
    backend.advance(backend.short_ttl * 3)  # a claim whose answer was lost: taken again once it lapses
    assert ids(store.claim_pending(KF, "host-a", LONG)) == ["m1"]
    assert store.claim_pending(KF, "host-b", LONG) == []


def test_expired_claims_are_claimable_again(backend: Backend) -> None:
    store = backend.make()
    store.accept_page(KF, "c", [item("m1"), item("m2")])
    assert ids(store.claim_pending(KF, "dead-host", backend.short_ttl)) == ["m1", "m2"]
    backend.advance(backend.short_ttl * 3)
    assert ids(store.claim_pending(KF, "host-b", LONG)) == ["m1", "m2"]
    assert store.claim_pending(KF, "dead-host", LONG) == []  # host-b holds them now


def test_renew_extends_only_the_owners_claims(backend: Backend) -> None:
    store = backend.make()
    store.accept_page(KF, "c", [item("m1"), item("m2"), item("m3")])
    assert ids(store.claim_pending(KF, "host-a", backend.short_ttl)) == ["m1", "m2", "m3"]
    store.finish(KF, "m3")
    # m2 is not host-b's: its renewal must not change anything; unknown and finished ids are ignored.
    store.renew_claims(KF, "host-a", ["m1", "m3", "unknown"], LONG)
    store.renew_claims(KF, "host-b", ["m2"], LONG)
    store.renew_claims(KF, "host-a", [], LONG)
    backend.advance(backend.short_ttl * 3)
    assert ids(store.claim_pending(KF, "host-c", LONG)) == ["m2"]
    assert ids(store.pending(KF)) == ["m1", "m2"]  # renewing did not bring m3 back


def test_renew_does_not_claim_unclaimed_items(backend: Backend) -> None:
    store = backend.make()
    store.accept_page(KF, "c", [item("m1")])
    store.renew_claims(KF, "host-a", ["m1"], LONG)
    assert ids(store.claim_pending(KF, "host-b", LONG)) == ["m1"]


def test_renew_after_another_owner_took_over_does_nothing(backend: Backend) -> None:
    store = backend.make()
    store.accept_page(KF, "c", [item("m1")])
    store.claim_pending(KF, "slow-host", backend.short_ttl)
    backend.advance(backend.short_ttl * 3)
    assert ids(store.claim_pending(KF, "host-b", backend.short_ttl)) == ["m1"]
    store.renew_claims(KF, "slow-host", ["m1"], LONG)  # too late: host-b holds it now
    backend.advance(backend.short_ttl * 3)
    assert ids(store.claim_pending(KF, "host-c", LONG)) == ["m1"]


def test_finish_drops_the_claim(backend: Backend) -> None:
    store = backend.make(done_ttl_seconds=backend.short_ttl)
    store.accept_page(KF, "c", [item("m1"), item("m2")], owner="host-a", lease_seconds=LONG)
    store.finish(KF, "m1")
    assert ids(store.pending(KF)) == ["m2"]
    assert store.claim_pending(KF, "host-b", LONG) == []  # m2 is still host-a's
    # Once the done mark expires the msgid can come back; a leftover claim of host-a would hide it.
    backend.advance(backend.short_ttl * 3)
    assert ids(store.accept_page(KF, "c2", [item("m1")])) == ["m1"]
    assert ids(store.claim_pending(KF, "host-b", LONG)) == ["m1"]


def test_accept_page_with_owner_claims_the_accepted_items(backend: Backend) -> None:
    store = backend.make()
    accepted = store.accept_page(KF, "c1", [item("m1"), item("m2")], owner="host-a", lease_seconds=LONG)
    assert ids(accepted) == ["m1", "m2"]
    store.accept_page(KF, "c3", [item("m4")])  # owner "" (the default): unclaimed
    assert ids(store.claim_pending(KF, "host-b", LONG)) == ["m4"]
    assert ids(store.pending(KF)) == ["m1", "m2", "m4"]


def test_accept_page_claim_expires_like_any_claim(backend: Backend) -> None:
    store = backend.make()
    store.accept_page(KF, "c", [item("m1")], owner="dead-host", lease_seconds=backend.short_ttl)
    backend.advance(backend.short_ttl * 3)
    assert ids(store.claim_pending(KF, "host-b", LONG)) == ["m1"]


def test_repeated_accept_returns_the_same_items_to_the_same_owner(backend: Backend) -> None:
    store = backend.make()
    page = [item("m1"), item("m2")]
    first = store.accept_page(KF, "c1", page, owner="host-a", lease_seconds=LONG)
    assert first == page
    # The first call's outcome was unknown to the caller (a timeout, say): it repeats the call.
    assert store.accept_page(KF, "c1", page, owner="host-a", lease_seconds=LONG) == page
    assert store.accept_page(KF, "c1", page, owner="host-b", lease_seconds=LONG) == []
    assert store.accept_page(KF, "c1", page) == []  # no owner: nothing is "its own"
    # A repeat that carries a new item as well: the old ones again, then the new one, claimed too.
    again = store.accept_page(KF, "c2", [*page, item("m3")], owner="host-a", lease_seconds=LONG)
    assert ids(again) == ["m1", "m2", "m3"]
    assert store.claim_pending(KF, "host-b", LONG) == []
    assert ids(store.pending(KF)) == ["m1", "m2", "m3"]
    assert store.load_cursor(KF) == "c2"


def test_repeated_accept_leaves_out_finished_items_and_others_claims(backend: Backend) -> None:
    store = backend.make()
    page = [item("m1"), item("m2"), item("m3")]
    store.accept_page(KF, "c1", page, owner="host-a", lease_seconds=backend.short_ttl)
    store.finish(KF, "m1")
    store.renew_claims(KF, "host-a", ["m3"], LONG)
    backend.advance(backend.short_ttl * 3)
    assert ids(store.claim_pending(KF, "host-b", LONG)) == ["m2"]  # host-a's lease on m2 lapsed
    assert ids(store.accept_page(KF, "c1", page, owner="host-a", lease_seconds=LONG)) == ["m3"]


def test_items_a_repeated_accept_hands_back_are_the_owners_for_the_new_lease(backend: Backend) -> None:
    # The repeat may come long after the first call (a retry that waited out an outage): what it returns
    # the caller handles as its own for lease_seconds, so nobody else may claim it meanwhile.
    store = backend.make()
    page = [item("m1"), item("m2")]
    store.accept_page(KF, "c1", page, owner="host-a", lease_seconds=backend.short_ttl)
    backend.advance(backend.short_ttl * 3)  # the first call's lease is over
    again = ids(store.accept_page(KF, "c1", page, owner="host-a", lease_seconds=LONG))
    taken_by_b = ids(store.claim_pending(KF, "host-b", LONG))
    assert sorted(again + taken_by_b) == ["m1", "m2"]  # each item in one owner's hands, not two


def test_duplicates_in_a_claimed_page_are_accepted_once(backend: Backend) -> None:
    store = backend.make()
    page = [item("m1"), item("m2"), item("m1", text="again")]
    assert ids(store.accept_page(KF, "c1", page, owner="host-a", lease_seconds=LONG)) == ["m1", "m2"]
    assert ids(store.accept_page(KF, "c1", page, owner="host-a", lease_seconds=LONG)) == ["m1", "m2"]
    assert ids(store.pending(KF)) == ["m1", "m2"]


def test_concurrent_claims_hand_out_each_item_once(backend: Backend) -> None:
    store = backend.make()
    total, owners = 120, 4
    got: list[set[str]] = [set() for _ in range(owners)]
    accepting = threading.Event()
    accepting.set()
    barrier = threading.Barrier(owners + 1)

    def accept_pages() -> None:
        barrier.wait(timeout=5)
        for page in range(total // 10):
            store.accept_page(KF, f"c{page}", [item(f"m{page}-{i}") for i in range(10)])
        accepting.clear()

    def claim(slot: int) -> None:
        barrier.wait(timeout=5)
        deadline = time.monotonic() + 15  # bounded; ends once nothing more is accepted and all is claimed
        while time.monotonic() < deadline:
            still_accepting = accepting.is_set()
            got[slot].update(ids(store.claim_pending(KF, f"host-{slot}", LONG)))
            if not still_accepting and sum(map(len, got)) >= total:
                return

    threads = [threading.Thread(target=accept_pages)]
    threads += [threading.Thread(target=claim, args=(slot,)) for slot in range(owners)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads)
    everything = [msgid for claimed in got for msgid in claimed]
    assert len(everything) == total  # no item went to two owners
    assert set(everything) == {f"m{p}-{i}" for p in range(total // 10) for i in range(10)}
