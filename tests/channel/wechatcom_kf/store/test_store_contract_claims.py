"""The StateStore contract for work shared between instances: pending accounts, claims with leases on
pending items, and pull requests. Runs against every backend (JSON file and a real Redis)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

KF = "wkAAAA"
KF2 = "wkBBBB"
LONG = 3600.0  # a lease that outlives any test, including its advance() calls


def item(msgid: str, kfid: str = KF) -> dict[str, Any]:
    return {"msgid": msgid, "open_kfid": kfid, "origin": 3, "msgtype": "text", "text": {"content": "你好"}}


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [it["msgid"] for it in items]


def test_pending_accounts_lists_exactly_the_accounts_with_pending_items(backend):
    store = backend.make()
    assert store.pending_accounts() == []
    store.accept_page(KF2, "c", [item("k1", KF2)])
    store.accept_page(KF, "c", [item("m1"), item("m2")])
    store.accept_page("wkCURSOR", "c", [], skipped_ids=["s1"])  # a cursor and done ids, nothing pending
    assert store.pending_accounts() == [KF, KF2]
    store.finish("m1")
    assert store.pending_accounts() == [KF, KF2]
    store.finish("m2")
    assert store.pending_accounts() == [KF2]
    store.finish("k1")
    assert store.pending_accounts() == []


def test_claim_takes_unclaimed_items_oldest_first_and_skips_live_claims(backend):
    store = backend.make()
    store.accept_page(KF, "c", [item("z9"), item("a1"), item("b5")])
    store.accept_page(KF2, "c", [item("k1", KF2)])
    first = store.claim_pending(KF, "host-a", LONG, limit=2)
    assert first == [item("z9"), item("a1")]
    assert ids(store.claim_pending(KF, "host-b", LONG)) == ["b5"]
    assert store.claim_pending(KF, "host-b", LONG) == []
    assert store.claim_pending(KF, "host-a", LONG) == []  # its own live claims are in its hands already
    assert ids(store.claim_pending(KF2, "host-b", LONG)) == ["k1"]  # accounts are independent
    assert ids(store.pending(KF)) == ["z9", "a1", "b5"]  # claimed items are still pending
    assert store.claim_pending("wkNONE", "host-a", LONG) == []


def test_claim_limit(backend):
    store = backend.make()
    store.accept_page(KF, "c", [item(f"m{i}") for i in range(5)])
    assert store.claim_pending(KF, "host-a", LONG, limit=0) == []
    assert ids(store.claim_pending(KF, "host-a", LONG, limit=1)) == ["m0"]
    assert ids(store.claim_pending(KF, "host-a", LONG, limit=10)) == ["m1", "m2", "m3", "m4"]
    with pytest.raises(ValueError):
        store.claim_pending(KF, "host-a", LONG, limit=-1)


def test_expired_claims_are_claimable_again(backend):
    store = backend.make()
    store.accept_page(KF, "c", [item("m1"), item("m2")])
    assert ids(store.claim_pending(KF, "dead-host", backend.short_ttl)) == ["m1", "m2"]
    backend.advance(backend.short_ttl * 3)
    assert ids(store.claim_pending(KF, "host-b", LONG)) == ["m1", "m2"]
    assert store.claim_pending(KF, "dead-host", LONG) == []


def test_renew_extends_only_the_owners_claims(backend):
    store = backend.make()
    store.accept_page(KF, "c", [item("m1"), item("m2"), item("m3")])
    assert ids(store.claim_pending(KF, "host-a", backend.short_ttl)) == ["m1", "m2", "m3"]
    store.finish("m3")
    # m2 is not host-b's: its renewal must not change anything; unknown and finished ids are ignored.
    store.renew_claims("host-a", ["m1", "m3", "unknown"], LONG)
    store.renew_claims("host-b", ["m2"], LONG)
    store.renew_claims("host-a", [], LONG)
    backend.advance(backend.short_ttl * 3)
    assert ids(store.claim_pending(KF, "host-c", LONG)) == ["m2"]
    assert ids(store.pending(KF)) == ["m1", "m2"]  # renewing did not bring m3 back


def test_renew_after_another_owner_took_over_does_nothing(backend):
    store = backend.make()
    store.accept_page(KF, "c", [item("m1")])
    store.claim_pending(KF, "slow-host", backend.short_ttl)
    backend.advance(backend.short_ttl * 3)
    assert ids(store.claim_pending(KF, "host-b", backend.short_ttl)) == ["m1"]
    store.renew_claims("slow-host", ["m1"], LONG)  # too late: host-b holds it now
    backend.advance(backend.short_ttl * 3)
    assert ids(store.claim_pending(KF, "host-c", LONG)) == ["m1"]


def test_finish_drops_the_claim(backend):
    store = backend.make(done_ttl_seconds=backend.short_ttl)
    store.accept_page(KF, "c", [item("m1"), item("m2")], owner="host-a", lease_seconds=LONG)
    store.finish("m1")
    assert ids(store.pending(KF)) == ["m2"]
    assert store.claim_pending(KF, "host-b", LONG) == []
    # Once the done mark expires the msgid can come back; a leftover claim of host-a would hide it.
    backend.advance(backend.short_ttl * 3)
    assert ids(store.accept_page(KF, "c2", [item("m1")])) == ["m1"]
    assert ids(store.claim_pending(KF, "host-b", LONG)) == ["m1"]


def test_accept_page_with_owner_claims_the_accepted_items(backend):
    store = backend.make()
    accepted = store.accept_page(KF, "c1", [item("m1"), item("m2")], owner="host-a", lease_seconds=LONG)
    assert ids(accepted) == ["m1", "m2"]
    assert ids(store.accept_page(KF, "c2", [item("m2"), item("m3")], owner="host-a")) == ["m3"]
    store.accept_page(KF, "c3", [item("m4")])  # no owner: unclaimed, as before claims existed
    assert ids(store.claim_pending(KF, "host-b", LONG)) == ["m4"]
    assert ids(store.pending(KF)) == ["m1", "m2", "m3", "m4"]


def test_accept_page_claim_expires_like_any_claim(backend):
    store = backend.make()
    store.accept_page(KF, "c", [item("m1")], owner="dead-host", lease_seconds=backend.short_ttl)
    backend.advance(backend.short_ttl * 3)
    assert ids(store.claim_pending(KF, "host-b", LONG)) == ["m1"]


def test_concurrent_claims_hand_out_each_item_once(backend):
    store = backend.make()
    store.accept_page(KF, "c", [item(f"m{i}") for i in range(60)])
    got: list[list[str]] = [[], []]
    barrier = threading.Barrier(2)

    def run(slot: int) -> None:
        barrier.wait(timeout=5)
        for _ in range(60):
            batch = ids(store.claim_pending(KF, f"host-{slot}", LONG, limit=3))
            if not batch:
                return
            got[slot] += batch

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(got[0] + got[1]) == sorted(f"m{i}" for i in range(60))


def test_pull_request_newest_token_wins_and_take_clears(backend):
    store = backend.make()
    assert store.take_pull_request(KF) is None
    store.request_pull(KF, "token-1")
    store.request_pull(KF, "token-2")
    store.request_pull(KF2, "token-x")
    assert store.take_pull_request(KF) == "token-2"
    assert store.take_pull_request(KF) is None
    assert store.take_pull_request(KF2) == "token-x"
    store.request_pull(KF, "token-3")
    assert store.take_pull_request(KF) == "token-3"
