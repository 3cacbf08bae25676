"""RedisStore specifics: a caller-owned client, key layout under the prefix, locks, claims and pull
requests across instances.

(A JSON file serves one process, so its locks are in-process only and have no such test.)
"""

from __future__ import annotations

import threading

import redis

from channel.wechatcom_kf.store import PULL_REQUEST_TTL_SECONDS
from channel.wechatcom_kf.store.redis_store import RedisStore


def test_works_with_a_callers_client_and_leaves_it_open(redis_url: str):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = RedisStore(client, prefix="own:", done_ttl_seconds=60)
    accepted = store.accept_page("wk1", "c1", [{"msgid": "m1", "text": {"content": "你好"}}], ["s1"])
    assert accepted == [{"msgid": "m1", "text": {"content": "你好"}}]
    assert store.pending("wk1") == accepted
    store.finish("m1")
    store.close()
    assert client.ping()  # not closed: the caller owns it
    assert client.get("own:cursor:wk1") == "c1"
    assert client.get("own:seen:m1") == "d"
    assert 0 < client.pttl("own:seen:s1") <= 60_000
    assert client.hlen("own:pending:wk1") == 0
    client.close()


def test_prefixes_isolate_deployments(redis_url: str):
    a = RedisStore(redis_url, prefix="depA:")
    b = RedisStore(redis_url, prefix="depB:")
    a.accept_page("wk", "ca", [{"msgid": "same"}])
    assert b.accept_page("wk", "cb", [{"msgid": "same"}]) == [{"msgid": "same"}]
    assert (a.load_cursor("wk"), b.load_cursor("wk")) == ("ca", "cb")
    a.close()
    b.close()


def test_lock_is_exclusive_between_store_instances(redis_url: str):
    first, second = RedisStore(redis_url, prefix="lock:"), RedisStore(redis_url, prefix="lock:")
    assert first.try_lock("wk", "host-a", 30)
    assert not second.try_lock("wk", "host-b", 30)
    first.unlock("wk", "host-a")
    assert second.try_lock("wk", "host-b", 30)


def test_two_instances_claim_concurrently_each_item_exactly_once(redis_url: str):
    stores = [RedisStore(redis_url, prefix="claim2:"), RedisStore(redis_url, prefix="claim2:")]
    stores[0].accept_page("wk", "c", [{"msgid": f"m{i}"} for i in range(200)])
    claimed: dict[str, list[str]] = {}
    barrier = threading.Barrier(4)

    def run(store: RedisStore, owner: str, name: str) -> None:
        barrier.wait(timeout=5)
        got: list[str] = []
        for _ in range(200):  # bounded; ends early once nothing is left
            batch = store.claim_pending("wk", owner, 3600, limit=5)
            if not batch:
                break
            got += [it["msgid"] for it in batch]
        claimed[name] = got

    threads = [
        threading.Thread(target=run, args=(stores[n], f"host-{n}", f"host-{n}/thread-{t}"))
        for n in range(2)
        for t in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    everything = [msgid for got in claimed.values() for msgid in got]
    assert len(claimed) == 4
    assert sorted(everything) == sorted(f"m{i}" for i in range(200))  # each once: no duplicates, none lost
    for store in stores:
        store.close()


def test_claims_outlive_a_store_instance(redis_url: str):
    # Unlike a JSON file's process, a Redis store's owner may still be alive on another machine.
    first = RedisStore(redis_url, prefix="keep:")
    first.accept_page("wk", "c", [{"msgid": "m1"}, {"msgid": "m2"}], owner="host-a", lease_seconds=3600)
    first.close()
    second = RedisStore(redis_url, prefix="keep:")
    assert second.claim_pending("wk", "host-b", 3600) == []
    assert second.pending_accounts() == ["wk"]
    second.close()


def test_claim_keys_are_cleaned_up_by_finish(redis_url: str):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = RedisStore(client, prefix="clean:")
    store.accept_page("wk", "c", [{"msgid": "m1"}, {"msgid": "m2"}], owner="host-a", lease_seconds=60)
    assert client.hlen("clean:claim:wk") == 2
    lease = client.hget("clean:claim:wk", "m1")
    assert isinstance(lease, str)
    expiry, _, owner = lease.partition(":")
    assert owner == "host-a"
    server_now_ms = client.time()[0] * 1000
    assert server_now_ms < int(expiry) <= server_now_ms + 61_000  # measured on the server's clock
    store.finish("m1")
    store.finish("m2")
    assert not client.exists("clean:claim:wk", "clean:order:wk", "clean:pending:wk")
    assert not client.sismember("clean:accounts", "wk")
    client.close()


def test_pending_accounts_indexes_data_of_older_versions(redis_url: str):
    # Older versions kept no ``accounts`` set: the accounts are found once from the order keys.
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.zadd("old*:order:wkOld", {"m1": 1})
    client.hset("old*:pending:wkOld", "m1", '{"msgid": "m1"}')
    client.set("old*:seen:m1", "p:wkOld")
    client.zadd("oldX:order:wkOther", {"x": 1})  # another deployment's: never listed as ours
    client.sadd("old*:accounts", "wkGone")  # stale entry: nothing pending there
    store = RedisStore(client, prefix="old*:")
    assert store.pending_accounts() == ["wkOld"]
    assert not client.sismember("old*:accounts", "wkGone")
    store.finish("m1")
    assert store.pending_accounts() == []
    assert RedisStore(client, prefix="old*:").pending_accounts() == []  # indexed once per deployment
    client.close()


def test_pull_requests_are_shared_between_instances_and_expire(redis_url: str):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    a, b = RedisStore(client, prefix="pull:"), RedisStore(client, prefix="pull:")
    a.request_pull("wk", "token-a")
    b.request_pull("wk", "token-b")
    assert 0 < client.pttl("pull:pull:wk") <= PULL_REQUEST_TTL_SECONDS * 1000
    assert a.take_pull_request("wk") == "token-b"
    assert b.take_pull_request("wk") is None
    client.close()
