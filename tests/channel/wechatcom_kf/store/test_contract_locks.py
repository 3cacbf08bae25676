"""The AccountLocks contract (one puller per account, pull requests between instances), run against
every backend: a JSON file and a real Redis."""

from __future__ import annotations

import threading

from tests.channel.wechatcom_kf.store.store_helpers import KF, KF2, LONG, Backend


def test_lock_is_exclusive_per_account(backend: Backend) -> None:
    store = backend.make()
    assert store.try_lock(KF, "owner-1", LONG)
    assert not store.try_lock(KF, "owner-2", LONG)
    assert store.try_lock(KF2, "owner-2", LONG)  # other accounts are independent
    assert not store.try_lock(KF2, "owner-1", LONG)


def test_same_owner_extends_its_lock(backend: Backend) -> None:
    store = backend.make()
    assert store.try_lock(KF, "owner-1", backend.short_ttl)
    assert store.try_lock(KF, "owner-1", LONG)  # extends to the new TTL
    backend.advance(backend.short_ttl * 3)  # past the first TTL, not the extended one
    assert not store.try_lock(KF, "owner-2", LONG)
    assert store.try_lock(KF, "owner-1", LONG)


def test_unlock_only_by_the_owner(backend: Backend) -> None:
    store = backend.make()
    assert store.try_lock(KF, "owner-1", LONG)
    store.unlock(KF, "owner-2")  # not the owner: no effect
    assert not store.try_lock(KF, "owner-2", LONG)
    store.unlock(KF2, "owner-1")  # another account: no effect
    assert not store.try_lock(KF, "owner-2", LONG)
    store.unlock(KF, "owner-1")
    assert store.try_lock(KF, "owner-2", LONG)
    store.unlock(KF, "owner-2")
    store.unlock(KF, "owner-2")  # unlocking a free lock is harmless
    assert store.try_lock(KF, "owner-3", LONG)


def test_lock_expires(backend: Backend) -> None:
    store = backend.make()
    assert store.try_lock(KF, "owner-1", backend.short_ttl)
    backend.advance(backend.short_ttl * 3)
    assert store.try_lock(KF, "owner-2", LONG)
    store.unlock(KF, "owner-1")  # the old owner's late unlock must not free the new lock
    assert not store.try_lock(KF, "owner-3", LONG)
    assert not store.try_lock(KF, "owner-1", LONG)  # nor may the old owner "extend" it


def test_lock_is_shared_by_store_instances(backend: Backend) -> None:
    first, second = backend.make(), backend.make()
    assert first.try_lock(KF, "owner-1", LONG)
    if backend.name == "redis":  # a JSON file serves one process: its locks live in that store object
        assert not second.try_lock(KF, "owner-2", LONG)
        first.unlock(KF, "owner-1")
        assert second.try_lock(KF, "owner-2", LONG)


def test_concurrent_try_lock_has_one_winner(backend: Backend) -> None:
    store = backend.make()
    results: dict[str, bool] = {}
    barrier = threading.Barrier(8)

    def run(owner: str) -> None:
        barrier.wait(timeout=5)
        results[owner] = store.try_lock(KF, owner, LONG)

    threads = [threading.Thread(target=run, args=(f"owner-{n}",)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(results) == 8
    assert sum(results.values()) == 1


def test_pull_request_newest_token_wins_and_take_clears(backend: Backend) -> None:
    store = backend.make()
    assert store.take_pull_request(KF) is None
    store.request_pull(KF, "token-1")
    store.request_pull(KF, "token-2")
    store.request_pull(KF2, "token-x")
    assert store.take_pull_request(KF) == "token-2"
    assert store.take_pull_request(KF) is None
    assert store.take_pull_request(KF2) == "token-x"
    assert store.take_pull_request(KF2) is None
    store.request_pull(KF, "token-3")
    assert store.take_pull_request(KF) == "token-3"


def test_pull_request_is_independent_of_the_lock(backend: Backend) -> None:
    store = backend.make()
    assert store.try_lock(KF, "owner-1", LONG)
    store.request_pull(KF, "token-1")
    store.unlock(KF, "owner-1")
    assert store.take_pull_request(KF) == "token-1"  # whoever holds the lock next takes it


def test_concurrent_takes_hand_a_request_out_once(backend: Backend) -> None:
    store = backend.make()
    store.request_pull(KF, "token-1")
    taken: list[str | None] = []
    barrier = threading.Barrier(6)

    def run() -> None:
        barrier.wait(timeout=5)
        taken.append(store.take_pull_request(KF))

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert taken.count("token-1") == 1
    assert taken.count(None) == 5
