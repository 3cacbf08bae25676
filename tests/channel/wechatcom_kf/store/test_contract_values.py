"""The KeyValues contract (takeover flags, reply plans), run against every backend: a JSON file and a
real Redis."""

from __future__ import annotations

import json
import threading

from tests.channel.wechatcom_kf.store.store_helpers import KF, LONG, Backend, item


def test_unset_value_is_none(backend: Backend) -> None:
    store = backend.make()
    assert store.get_value("takeover:wmUSER") is None


def test_set_get_and_delete(backend: Backend) -> None:
    store = backend.make()
    store.set_value("takeover:wmUSER", "zhangsan", None)
    store.set_value("plan:m1", "{}", LONG)
    assert store.get_value("takeover:wmUSER") == "zhangsan"
    assert store.get_value("plan:m1") == "{}"
    store.set_value("takeover:wmUSER", None, None)
    assert store.get_value("takeover:wmUSER") is None
    assert store.get_value("plan:m1") == "{}"  # other keys are untouched


def test_deleting_a_missing_value_is_harmless(backend: Backend) -> None:
    store = backend.make()
    store.set_value("never-set", None, None)
    store.set_value("never-set", None, LONG)
    assert store.get_value("never-set") is None


def test_overwrite_replaces_value_and_expiry(backend: Backend) -> None:
    store = backend.make()
    store.set_value("a", "1", backend.short_ttl)
    store.set_value("a", "2", None)  # no TTL any more
    store.set_value("b", "1", None)
    store.set_value("b", "2", backend.short_ttl)  # now it expires
    store.set_value("c", "1", backend.short_ttl)
    store.set_value("c", "2", LONG)  # a longer TTL
    assert (store.get_value("a"), store.get_value("b"), store.get_value("c")) == ("2", "2", "2")
    backend.advance(backend.short_ttl * 3)
    assert (store.get_value("a"), store.get_value("b"), store.get_value("c")) == ("2", None, "2")


def test_values_expire(backend: Backend) -> None:
    store = backend.make()
    store.set_value("forever", "1", None)
    store.set_value("brief", "2", backend.short_ttl)
    assert (store.get_value("forever"), store.get_value("brief")) == ("1", "2")
    backend.advance(backend.short_ttl * 3)
    assert (store.get_value("forever"), store.get_value("brief")) == ("1", None)
    store.maintain()
    assert (store.get_value("forever"), store.get_value("brief")) == ("1", None)
    store.set_value("brief", "3", None)  # an expired key can be set again
    assert store.get_value("brief") == "3"


def test_keys_and_values_of_any_text(backend: Backend) -> None:
    store = backend.make()
    pairs = {
        "plan:{wkAAAA}:m1": json.dumps({"parts": ["你好", "世界"]}, ensure_ascii=False),
        "takeover:wm user\nwith newline": 'quote " and backslash \\',
        "空": "",
    }
    for key, value in pairs.items():
        store.set_value(key, value, None)
    for key, value in pairs.items():
        assert store.get_value(key) == value
    again = backend.make()
    for key, value in pairs.items():
        assert again.get_value(key) == value


def test_values_are_durable_without_close(backend: Backend) -> None:
    store = backend.make()
    store.set_value("takeover:wmUSER", "zhangsan", None)
    store.set_value("plan:m1", "p1", LONG)
    store.set_value("gone", "x", None)
    store.set_value("gone", None, None)
    again = backend.make()  # the first store was never closed: as after a crash
    assert again.get_value("takeover:wmUSER") == "zhangsan"
    assert again.get_value("plan:m1") == "p1"
    assert again.get_value("gone") is None


def test_value_expiry_survives_a_new_store_instance(backend: Backend) -> None:
    store = backend.make()
    store.set_value("brief", "1", backend.short_ttl)
    store.close()
    again = backend.make()
    assert again.get_value("brief") == "1"
    backend.advance(backend.short_ttl * 3)
    assert again.get_value("brief") is None
    assert backend.make().get_value("brief") is None


def test_values_do_not_touch_the_inbox(backend: Backend) -> None:
    store = backend.make()
    store.accept_page(KF, "c1", [item("m1")])
    store.set_value("m1", "not a msgid", None)
    store.set_value("cursor", "not a cursor", None)
    assert store.load_cursor(KF) == "c1"
    assert [it["msgid"] for it in store.pending(KF)] == ["m1"]
    assert store.known_accounts() == [KF]


def test_concurrent_writers_of_distinct_keys(backend: Backend) -> None:
    store = backend.make()
    barrier = threading.Barrier(4)

    def run(slot: int) -> None:
        barrier.wait(timeout=5)
        for n in range(25):
            store.set_value(f"k{slot}-{n}", f"v{n}", None)

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads)
    again = backend.make()
    assert all(again.get_value(f"k{slot}-{n}") == f"v{n}" for slot in range(4) for n in range(25))
