"""RedisStore specifics: a caller-owned client, key layout under the prefix, locks across instances.

(A JSON file serves one process, so its locks are in-process only and have no such test.)
"""

from __future__ import annotations

import redis

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
