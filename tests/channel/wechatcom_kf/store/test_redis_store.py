"""RedisStore specifics: a caller-owned client, the cluster-safe key layout under the prefix, locks,
claims and pull requests across instances, which errors are transient (StoreUnavailable) and which
are not. The old layout's migration is in test_redis_migration.py, a real cluster in
test_redis_cluster.py."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError
from redis.retry import Retry

from channel.wechatcom_kf.store import PULL_REQUEST_TTL_SECONDS, StoreUnavailable
from channel.wechatcom_kf.store.redis_store import RedisStore
from tests.channel.wechatcom_kf.store.store_helpers import LONG, RedisServer, free_port, ids


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url, decode_responses=True)
    yield c
    c.close()


@pytest.fixture
def prefix() -> str:
    return f"r{uuid.uuid4().hex[:8]}:"


def no_retry_client(port: int, timeout: float = 1.0) -> redis.Redis:
    """A client that reports the first failure (redis-py would otherwise retry for seconds)."""
    return redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )  # fmt: skip


def test_works_with_a_callers_client_and_leaves_it_open(client: redis.Redis, prefix: str) -> None:
    store = RedisStore(client, prefix=prefix, done_ttl_seconds=60)
    accepted = store.accept_page("wk1", "c1", [{"msgid": "m1", "text": {"content": "你好"}}], ["s1"])
    assert accepted == [{"msgid": "m1", "text": {"content": "你好"}}]
    assert store.pending("wk1") == accepted
    store.finish("wk1", "m1")
    store.close()
    assert client.ping()  # not closed: the caller owns it


def test_every_key_of_an_account_carries_its_hash_tag(client: redis.Redis, prefix: str) -> None:
    store = RedisStore(client, prefix=prefix, done_ttl_seconds=60)
    store.accept_page(
        "wk1", "c1", [{"msgid": "m1"}, {"msgid": "m2"}], ["s1"], owner="host-a", lease_seconds=60
    )
    store.finish("wk1", "m1")
    assert store.try_lock("wk1", "host-a", 30)
    store.request_pull("wk1", "token-1")
    store.set_value("takeover:wmUSER", "zhangsan", None)
    tag = prefix + "{wk1}:"
    assert client.get(tag + "cursor") == "c1"
    assert client.hkeys(tag + "pending") == ["m2"]
    assert client.zrange(tag + "order", 0, -1) == ["m2"]
    assert client.get(tag + "seen:m1") == "d"
    assert client.get(tag + "seen:m2") == "p"
    assert 0 < client.pttl(tag + "seen:m1") <= 60_000
    assert 0 < client.pttl(tag + "seen:s1") <= 60_000
    assert client.pttl(tag + "seen:m2") == -1  # pending ids never expire
    assert client.hkeys(tag + "claim") == ["m2"]
    assert client.get(tag + "lock") == "host-a"  # redis-py's Lock, the owner as its token
    assert client.get(tag + "pull") == "token-1"
    assert client.smembers(prefix + "accounts") == {"wk1"}
    assert client.get(prefix + "value:takeover:wmUSER") == "zhangsan"
    ours = set(client.scan_iter(match=prefix.replace("*", r"\*") + "*"))
    assert all(
        key.startswith(tag)
        for key in ours - {prefix + "accounts", prefix + "value:takeover:wmUSER", prefix + "layout"}
    )
    store.close()


def test_claims_are_measured_on_the_servers_clock(client: redis.Redis, prefix: str) -> None:
    store = RedisStore(client, prefix=prefix)
    store.accept_page("wk", "c", [{"msgid": "m1"}, {"msgid": "m2"}], owner="host-a", lease_seconds=60)
    lease = client.hget(prefix + "{wk}:claim", "m1")
    assert isinstance(lease, str)
    expiry, _, owner = lease.partition(":")
    assert owner == "host-a"
    server_now_ms = client.time()[0] * 1000
    assert server_now_ms < int(expiry) <= server_now_ms + 61_000
    store.finish("wk", "m1")
    store.finish("wk", "m2")
    assert not client.exists(prefix + "{wk}:claim", prefix + "{wk}:order", prefix + "{wk}:pending")
    assert store.known_accounts() == ["wk"]  # it has a cursor
    assert store.pending_accounts() == []


def test_owner_with_a_colon_is_handled(client: redis.Redis, prefix: str) -> None:
    store = RedisStore(client, prefix=prefix)
    store.accept_page("wk", "c", [{"msgid": "m1"}], owner="host:1:pid", lease_seconds=LONG)
    store.renew_claims("wk", "host:1", ["m1"], 0.001)  # not the owner: must not shorten the lease
    assert store.claim_pending("wk", "host:1", LONG) == []
    assert ids(store.accept_page("wk", "c", [{"msgid": "m1"}], owner="host:1:pid")) == ["m1"]


def test_prefixes_isolate_deployments(redis_url: str, prefix: str) -> None:
    a = RedisStore(redis_url, prefix=prefix + "A:")
    b = RedisStore(redis_url, prefix=prefix + "B:")
    a.accept_page("wk", "ca", [{"msgid": "same"}])
    a.set_value("k", "a", None)
    assert b.accept_page("wk", "cb", [{"msgid": "same"}]) == [{"msgid": "same"}]
    assert (a.load_cursor("wk"), b.load_cursor("wk")) == ("ca", "cb")
    assert b.get_value("k") is None
    assert a.try_lock("wk", "host-a", 30) and b.try_lock("wk", "host-b", 30)
    a.close()
    b.close()


def test_prefix_must_not_contain_hash_tag_braces(redis_url: str) -> None:
    for bad in ("a{b:", "a}b:"):
        with pytest.raises(ValueError, match="hash tags"):
            RedisStore(redis_url, prefix=bad)


def test_lock_is_exclusive_between_store_instances(redis_url: str, prefix: str) -> None:
    first, second = RedisStore(redis_url, prefix=prefix), RedisStore(redis_url, prefix=prefix)
    assert first.try_lock("wk", "host-a", 30)
    assert not second.try_lock("wk", "host-b", 30)
    assert second.try_lock("wk", "host-a", 30)  # the owner, from another instance, extends it
    first.unlock("wk", "host-a")
    assert second.try_lock("wk", "host-b", 30)
    first.close()
    second.close()


def test_instances_claim_concurrently_each_item_exactly_once(redis_url: str, prefix: str) -> None:
    stores = [RedisStore(redis_url, prefix=prefix) for _ in range(2)]
    stores[0].accept_page("wk", "c", [{"msgid": f"m{i}"} for i in range(300)])
    claimed: dict[str, list[str]] = {}
    barrier = threading.Barrier(4)

    def run(store: RedisStore, owner: str) -> None:
        barrier.wait(timeout=5)
        claimed[owner] = ids(store.claim_pending("wk", owner, LONG))

    threads = [
        threading.Thread(target=run, args=(stores[n % 2], f"host-{n}")) for n in range(4)
    ]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    everything = [msgid for got in claimed.values() for msgid in got]
    assert len(claimed) == 4
    assert sorted(everything) == sorted(f"m{i}" for i in range(300))  # each once: none twice, none lost
    for store in stores:
        store.close()


def test_claims_outlive_a_store_instance(redis_url: str, prefix: str) -> None:
    # Unlike a JSON file's process, a Redis store's owner may still be alive on another machine.
    first = RedisStore(redis_url, prefix=prefix)
    first.accept_page("wk", "c", [{"msgid": "m1"}, {"msgid": "m2"}], owner="host-a", lease_seconds=LONG)
    first.close()
    second = RedisStore(redis_url, prefix=prefix)
    assert second.claim_pending("wk", "host-b", LONG) == []
    assert ids(second.accept_page("wk", "c", [{"msgid": "m1"}, {"msgid": "m2"}], owner="host-a")) == [
        "m1",
        "m2",
    ]
    assert second.pending_accounts() == ["wk"]
    second.close()


def test_a_large_backlog_is_claimed_in_one_call(client: redis.Redis, prefix: str) -> None:
    store = RedisStore(client, prefix=prefix)
    for page in range(5):  # HMGET goes in chunks: unpack() of 5000 ids at once would overflow Lua
        store.accept_page("wk", f"c{page}", [{"msgid": f"m{page}-{i}"} for i in range(1000)])
    assert len(store.claim_pending("wk", "host-a", LONG)) == 5000
    assert len(store.pending("wk")) == 5000


def test_pull_requests_are_shared_between_instances_and_expire(client: redis.Redis, prefix: str) -> None:
    a, b = RedisStore(client, prefix=prefix), RedisStore(client, prefix=prefix)
    a.request_pull("wk", "token-a")
    b.request_pull("wk", "token-b")
    key = prefix + "{wk}:pull"
    assert 0 < client.pttl(key) <= PULL_REQUEST_TTL_SECONDS * 1000
    assert a.take_pull_request("wk") == "token-b"
    assert b.take_pull_request("wk") is None
    a.request_pull("wk", "token-c")
    client.pexpire(key, 1)  # what 10 minutes do
    redis_wait_gone(client, key)
    assert b.take_pull_request("wk") is None


def redis_wait_gone(client: redis.Redis, key: str) -> None:
    for _ in range(200):
        if not client.exists(key):
            return
        threading.Event().wait(0.01)
    pytest.fail(f"{key} did not expire")


def test_value_ttl_is_set_on_the_server(client: redis.Redis, prefix: str) -> None:
    store = RedisStore(client, prefix=prefix)
    store.set_value("plan:m1", "p", 60)
    store.set_value("takeover:wmUSER", "zhangsan", None)
    assert 0 < client.pttl(prefix + "value:plan:m1") <= 60_000
    assert client.pttl(prefix + "value:takeover:wmUSER") == -1
    store.set_value("plan:m1", "p2", None)
    assert client.pttl(prefix + "value:plan:m1") == -1


# --- errors: transient ones are StoreUnavailable, bugs are not --------------------------------------


def test_unreachable_server_is_store_unavailable() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(StoreUnavailable):
        RedisStore(no_retry_client(port))


def test_unreachable_server_through_a_url_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable):
        RedisStore(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.5)


def test_timeout_is_store_unavailable() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts connections (the backlog), never answers a command
        with pytest.raises(StoreUnavailable):
            RedisStore(no_retry_client(silent.getsockname()[1], timeout=0.2))


def test_a_server_gone_mid_run_is_store_unavailable(redis_servers: Callable[..., RedisServer]) -> None:
    server = redis_servers()
    store = RedisStore(no_retry_client(server.port), prefix="gone:")
    store.accept_page("wk", "c", [{"msgid": "m1"}])
    server.stop()
    calls: list[Callable[[], object]] = [
        lambda: store.load_cursor("wk"),
        lambda: store.accept_page("wk", "c2", [{"msgid": "m2"}]),
        lambda: store.pending("wk"),
        lambda: store.known_accounts(),
        lambda: store.pending_accounts(),
        lambda: store.claim_pending("wk", "host-a", 60),
        lambda: store.renew_claims("wk", "host-a", ["m1"], 60),
        lambda: store.finish("wk", "m1"),
        lambda: store.try_lock("wk", "host-a", 60),
        lambda: store.unlock("wk", "host-a"),
        lambda: store.request_pull("wk", "t"),
        lambda: store.take_pull_request("wk"),
        lambda: store.get_value("k"),
        lambda: store.set_value("k", "v", None),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable):
            call()


def test_read_only_replica_is_store_unavailable(redis_servers: Callable[..., RedisServer]) -> None:
    server = redis_servers()
    admin = server.client(decode_responses=True)
    store = RedisStore(no_retry_client(server.port), prefix="ro:")
    store.set_value("k", "before", None)
    admin.replicaof("127.0.0.1", free_port())  # a replica (of nothing reachable): read-only
    try:
        with pytest.raises(StoreUnavailable):
            store.set_value("k", "during", None)
        with pytest.raises(StoreUnavailable):
            store.accept_page("wk", "c", [{"msgid": "m1"}])
        assert store.get_value("k") == "before"  # reads still work
    finally:
        admin.replicaof("NO", "ONE")  # promoted: writable again
    store.set_value("k", "after", None)
    assert store.get_value("k") == "after"
    admin.close()


def test_script_and_type_errors_stay_response_errors(client: redis.Redis, prefix: str) -> None:
    store = RedisStore(client, prefix=prefix)
    client.set(prefix + "{wk}:pending", "not a hash")  # a bug or a foreign key, not an outage
    with pytest.raises(ResponseError) as raised:
        store.accept_page("wk", "c", [{"msgid": "m1"}])
    assert not isinstance(raised.value, StoreUnavailable)
    client.set(prefix + "{wk2}:order", "not a zset")
    with pytest.raises(ResponseError):
        store.pending("wk2")
