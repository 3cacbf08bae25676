"""The one-time move of the first Redis layout (key names built inside the scripts, one Redis only) to
the cluster-safe one: the old keys are written by hand with redis-py into a fresh prefix, then a
RedisStore is constructed on it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import redis

from channel.wechatcom_kf.store.redis_migration import LAYOUT_VERSION, migrate_layout_1
from channel.wechatcom_kf.store.redis_store import RedisStore
from tests.channel.wechatcom_kf.store.store_helpers import LONG, ids


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url, decode_responses=True)
    yield c
    c.close()


@pytest.fixture
def prefix() -> str:
    return f"m{uuid.uuid4().hex[:6]}*:"  # a glob character in it: the scans must escape it


def body(msgid: str, kfid: str) -> str:
    return json.dumps({"msgid": msgid, "open_kfid": kfid, "text": {"content": "你好"}}, ensure_ascii=False)


def keys_under(client: redis.Redis, prefix: str) -> set[str]:
    return {k for k in client.scan_iter(count=1000) if k.startswith(prefix)}


def write_old_layout(client: redis.Redis, p: str) -> None:
    """Two accounts as the first layout kept them, a finished message, claims, values, and a lock."""
    client.set(p + "cursor:wkA", "cursor-a")
    # Accept order is the zset order (a global sequence), not the msgid order nor the hash order.
    client.zadd(p + "order:wkA", {"z9": 3, "a1": 7, "m5": 12})
    client.hset(
        p + "pending:wkA", mapping={"a1": body("a1", "wkA"), "z9": body("z9", "wkA"), "m5": body("m5", "wkA")}
    )
    client.hset(p + "claim:wkA", "a1", "99999999999999:host-old")  # a live claim of an old instance
    client.zadd(p + "order:wkB", {"k1": 5})  # pending items, no cursor yet
    client.hset(p + "pending:wkB", "k1", body("k1", "wkB"))
    for msgid, kfid in (("z9", "wkA"), ("a1", "wkA"), ("m5", "wkA"), ("k1", "wkB")):
        client.set(p + "seen:" + msgid, "p:" + kfid)
    client.set(p + "seen:done1", "d", px=3_600_000)
    client.set(p + "seq", 12)
    client.sadd(p + "accounts", "wkA", "wkB")
    client.set(p + "accounts_indexed", "1")
    client.set(p + "flag:takeover:wmUSER", "zhangsan")
    client.set(p + "flag:plan:m1", '{"parts": 2}', px=600_000)
    client.set(p + "lock:wkA", "host-old", px=30_000)


def test_cursor_pending_order_and_values_move(client: redis.Redis, prefix: str) -> None:
    write_old_layout(client, prefix)
    store = RedisStore(client, prefix=prefix)
    assert store.load_cursor("wkA") == "cursor-a"
    assert store.load_cursor("wkB") is None
    assert ids(store.pending("wkA")) == ["z9", "a1", "m5"]
    assert store.pending("wkB") == [json.loads(body("k1", "wkB"))]
    assert store.known_accounts() == ["wkA", "wkB"]
    assert store.pending_accounts() == ["wkA", "wkB"]
    assert store.get_value("takeover:wmUSER") == "zhangsan"
    assert store.get_value("plan:m1") == '{"parts": 2}'
    assert client.pttl(prefix + "value:takeover:wmUSER") == -1
    assert 0 < client.pttl(prefix + "value:plan:m1") <= 600_000  # the expiry came along
    assert client.get(prefix + "layout") == LAYOUT_VERSION


def test_migrated_items_keep_their_dedup_and_order_after_new_ones(client: redis.Redis, prefix: str) -> None:
    write_old_layout(client, prefix)
    store = RedisStore(client, prefix=prefix)
    new = [json.loads(body(m, "wkA")) for m in ("a1", "b0", "z9")]
    assert ids(store.accept_page("wkA", "cursor-a2", new)) == ["b0"]  # pending ones are still known
    assert ids(store.pending("wkA")) == ["z9", "a1", "m5", "b0"]
    store.finish("wkA", "a1")
    assert ids(store.pending("wkA")) == ["z9", "m5", "b0"]


def test_claims_and_done_markers_are_not_carried_over(client: redis.Redis, prefix: str) -> None:
    write_old_layout(client, prefix)
    store = RedisStore(client, prefix=prefix)
    # Every instance is upgraded together: nobody still holds the old claims.
    assert ids(store.claim_pending("wkA", "host-new", LONG)) == ["z9", "a1", "m5"]
    # sync_msg never returns what lies before the saved cursor, so old done markers are not needed.
    assert ids(store.accept_page("wkA", "c", [json.loads(body("done1", "wkA"))])) == ["done1"]


def test_old_keys_are_gone(client: redis.Redis, prefix: str) -> None:
    write_old_layout(client, prefix)
    RedisStore(client, prefix=prefix)
    left = keys_under(client, prefix)
    for name in ("cursor:wkA", "order:wkA", "pending:wkA", "claim:wkA", "order:wkB", "pending:wkB"):
        assert prefix + name not in left
    for msgid in ("z9", "a1", "m5", "k1"):
        assert prefix + "seen:" + msgid not in left
    assert not [k for k in left if k.startswith(prefix + "flag:")]
    assert prefix + "layout_migrating" not in left


def test_no_key_of_the_old_layout_stays_forever(client: redis.Redis, prefix: str) -> None:
    # What the migration leaves of the old layout must at least expire on its own (done markers,
    # locks): nothing of it may stay in Redis for good.
    write_old_layout(client, prefix)
    RedisStore(client, prefix=prefix)
    new_layout = {prefix + "accounts", prefix + "layout"}
    old_left = {k for k in keys_under(client, prefix) if "{" not in k and k not in new_layout}
    old_value_keys = {k for k in old_left if k.startswith(prefix + "value:")}
    forever = sorted(k for k in old_left - old_value_keys if client.pttl(k) == -1)
    assert forever == []


def test_stale_entries_of_the_old_accounts_set_are_not_known_accounts(
    client: redis.Redis, prefix: str
) -> None:
    write_old_layout(client, prefix)
    client.sadd(prefix + "accounts", "wkGone")  # stale: the old layout removed these lazily
    store = RedisStore(client, prefix=prefix)
    assert store.known_accounts() == ["wkA", "wkB"]


def test_other_deployments_are_untouched(client: redis.Redis, prefix: str) -> None:
    other = prefix.replace("*", "X")  # matches the unescaped pattern of ours
    write_old_layout(client, prefix)
    write_old_layout(client, other)
    before = {k: client.dump(k) for k in keys_under(client, other)}
    RedisStore(client, prefix=prefix)
    assert {k: client.dump(k) for k in keys_under(client, other)} == before


def test_second_construction_is_a_no_op(client: redis.Redis, prefix: str) -> None:
    write_old_layout(client, prefix)
    store = RedisStore(client, prefix=prefix)
    store.accept_page("wkA", "cursor-a2", [json.loads(body("b0", "wkA"))])
    client.set(prefix + "cursor:wkLate", "late")  # an old-layout key written after the move
    snapshot = {k: client.dump(k) for k in keys_under(client, prefix)}
    again = RedisStore(client, prefix=prefix)
    assert {k: client.dump(k) for k in keys_under(client, prefix)} == snapshot
    assert again.load_cursor("wkA") == "cursor-a2"
    assert ids(again.pending("wkA")) == ["z9", "a1", "m5", "b0"]
    assert again.load_cursor("wkLate") is None
    assert migrate_layout_1(client, prefix, lambda kfid, name: f"{prefix}{{{kfid}}}:{name}") == 0


def test_migration_reports_every_account_it_moved(client: redis.Redis, prefix: str) -> None:
    write_old_layout(client, prefix)  # wkA has a cursor, wkB only pending items
    assert migrate_layout_1(client, prefix, lambda kfid, name: f"{prefix}{{{kfid}}}:{name}") == 2


def test_fresh_prefix_only_gets_the_layout_marker(client: redis.Redis, prefix: str) -> None:
    RedisStore(client, prefix=prefix)
    assert keys_under(client, prefix) == {prefix + "layout"}


def test_an_instance_migrating_already_is_not_disturbed(client: redis.Redis, prefix: str) -> None:
    write_old_layout(client, prefix)
    client.set(prefix + "layout_migrating", "1", ex=60)  # another instance is moving the keys now
    assert migrate_layout_1(client, prefix, lambda kfid, name: f"{prefix}{{{kfid}}}:{name}") == 0
    assert client.get(prefix + "cursor:wkA") == "cursor-a"  # left to the other instance
    assert client.get(prefix + "layout_migrating") == "1"
