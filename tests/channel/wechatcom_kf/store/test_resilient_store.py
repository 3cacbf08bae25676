"""ResilientStore: a call that fails with StoreUnavailable is retried where it happens until the store is
back or ``stop()`` is called; the outage is logged once when it starts and once when it ends.

Real outages only: a private redis-server this module stops and restarts (the run's shared one must
stay up), a redis-server turned into a read-only replica and promoted back, and a JsonFileStore whose
files cannot be written, in ways root cannot bypass either (a directory where a file must go).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError
from redis.retry import Retry

from channel.wechatcom_kf.store import JsonFileStore, ResilientStore, StateStore, StoreUnavailable
from channel.wechatcom_kf.store.journal import JOURNAL_NAME
from channel.wechatcom_kf.store.main_file import FILE_NAME
from channel.wechatcom_kf.store.redis_store import RedisStore
from tests.channel.wechatcom_kf.store.store_helpers import (
    KF,
    LONG,
    Call,
    RedisServer,
    free_port,
    ids,
    item,
    wait_until,
)

LOGGER = "channel.wechatcom_kf.store.resilient"
WAIT = 15.0  # bound of every wait for a retried call: STORE's backoff is capped at 2 s


def outage_records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == level]


def wait_for_outage_warning(caplog: pytest.LogCaptureFixture) -> None:
    wait_until(lambda: bool(outage_records(caplog, logging.WARNING)), WAIT, "the outage WARNING")


def no_retry_client(port: int) -> redis.Redis:
    """A client that reports each failure at once: the retrying is ResilientStore's job."""
    return redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
    )


@pytest.fixture
def server(redis_servers: Callable[..., RedisServer]) -> RedisServer:
    return redis_servers()


@pytest.fixture
def resilient_redis(server: RedisServer) -> Iterator[ResilientStore]:
    client = no_retry_client(server.port)
    store = ResilientStore(RedisStore(client, prefix="res:"))
    yield store
    store.close()
    client.close()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return caplog


def test_wraps_any_store_as_a_state_store(tmp_path: Path) -> None:
    store = ResilientStore(JsonFileStore(tmp_path))
    assert isinstance(store, StateStore)
    store.accept_page(KF, "c", [item("m1")])
    assert ids(store.claim_pending(KF, "host-a", LONG)) == ["m1"]
    store.finish(KF, "m1")
    store.set_value("k", "v", None)
    assert (store.pending(KF), store.get_value("k"), store.known_accounts()) == ([], "v", [KF])
    store.close()


# --- Redis ------------------------------------------------------------------------------------------


def test_a_call_during_an_outage_blocks_until_redis_is_back(
    server: RedisServer, resilient_redis: ResilientStore, logs: pytest.LogCaptureFixture
) -> None:
    resilient_redis.set_value("before", "1", None)
    server.stop()
    call = Call(lambda: resilient_redis.set_value("takeover:wmUSER", "zhangsan", None))
    wait_for_outage_warning(logs)
    assert call.running  # retrying, not failed
    server.start()  # same port, empty (no persistence)
    assert call.wait().error is None
    assert resilient_redis.get_value("takeover:wmUSER") == "zhangsan"
    warnings, infos = outage_records(logs, logging.WARNING), outage_records(logs, logging.INFO)
    assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage()
    assert len(infos) == 1 and "available again" in infos[0].getMessage()
    assert all("still unavailable" in r.getMessage() for r in outage_records(logs, logging.DEBUG))


def test_every_outage_is_logged_once(
    server: RedisServer, resilient_redis: ResilientStore, logs: pytest.LogCaptureFixture
) -> None:
    def accept(msgid: str) -> Callable[[], Any]:
        return lambda: resilient_redis.accept_page(KF, "c-" + msgid, [item(msgid)])

    def warned(times: int) -> Callable[[], bool]:
        return lambda: len(outage_records(logs, logging.WARNING)) == times

    for outage in range(2):
        server.stop()
        calls = [Call(accept(f"m{outage}-{n}")) for n in range(3)]  # three callers, one outage
        wait_until(warned(outage + 1), WAIT, "the outage WARNING")
        server.start()
        for call in calls:
            assert call.wait().error is None
    assert len(outage_records(logs, logging.WARNING)) == 2
    assert len(outage_records(logs, logging.INFO)) == 2


def test_an_accept_during_an_outage_is_accepted_and_claimed_once_redis_is_back(
    server: RedisServer, resilient_redis: ResilientStore
) -> None:
    server.stop()
    call = Call(lambda: resilient_redis.accept_page(KF, "c1", [item("m1"), item("m2")], owner="host-a"))
    server.start()
    assert ids(call.wait().result) == ["m1", "m2"]
    assert resilient_redis.claim_pending(KF, "host-b", LONG) == []
    assert resilient_redis.load_cursor(KF) == "c1"


def test_stop_makes_a_blocked_call_raise_promptly(
    server: RedisServer, resilient_redis: ResilientStore, logs: pytest.LogCaptureFixture
) -> None:
    server.stop()
    call = Call(lambda: resilient_redis.finish(KF, "m1"))
    wait_for_outage_warning(logs)
    resilient_redis.stop()
    assert isinstance(call.wait(timeout=5).error, StoreUnavailable)
    with pytest.raises(StoreUnavailable):  # from now on a failure is not retried
        resilient_redis.get_value("k")
    assert outage_records(logs, logging.INFO) == []  # it never came back
    assert len(outage_records(logs, logging.WARNING)) == 1


def test_a_read_only_replica_is_waited_out_until_promoted(
    server: RedisServer, resilient_redis: ResilientStore, logs: pytest.LogCaptureFixture
) -> None:
    admin = server.client()
    admin.replicaof("127.0.0.1", free_port())  # what a failover in progress looks like
    try:
        call = Call(lambda: resilient_redis.set_value("k", "v", None))
        wait_for_outage_warning(logs)
        assert call.running
    finally:
        admin.replicaof("NO", "ONE")
        admin.close()
    assert call.wait().error is None
    assert resilient_redis.get_value("k") == "v"
    assert len(outage_records(logs, logging.INFO)) == 1


def test_errors_that_are_not_outages_are_raised_at_once(
    redis_url: str, logs: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis.from_url(redis_url)
    store = ResilientStore(RedisStore(client, prefix="res-bug:"))
    with pytest.raises(ValueError):
        store.accept_page(KF, "c", [{"no": "msgid"}])
    client.set("res-bug:{wk}:order", "not a zset")
    with pytest.raises(ResponseError):
        store.pending("wk")
    client.delete("res-bug:{wk}:order")
    assert outage_records(logs, logging.WARNING) == []  # no retry, so no outage either
    store.close()
    client.close()


# --- JSON file --------------------------------------------------------------------------------------


def test_a_finish_blocks_while_the_journal_cannot_be_written(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    backend = JsonFileStore(tmp_path)
    store = ResilientStore(backend)
    store.accept_page(KF, "c1", [item("m1"), item("m2")])
    backend.compact()  # closes the journal's descriptor: the next append opens the path again
    journal = tmp_path / JOURNAL_NAME
    journal.unlink()
    journal.mkdir()  # EISDIR on every append, for root too
    call = Call(lambda: store.finish(KF, "m1"))
    wait_for_outage_warning(logs)
    assert call.running
    journal.rmdir()
    assert call.wait().error is None
    assert len(outage_records(logs, logging.WARNING)) == 1
    assert len(outage_records(logs, logging.INFO)) == 1
    again = JsonFileStore(tmp_path)  # the finish is durable: a new process sees it
    assert ids(again.pending(KF)) == ["m2"]
    again.close()
    store.close()


def test_an_accept_blocks_while_the_main_file_cannot_be_replaced(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    store = ResilientStore(JsonFileStore(tmp_path / "state"))
    store.accept_page(KF, "c1", [item("m1")])
    main = tmp_path / "state" / FILE_NAME
    aside = tmp_path / "aside.json"
    main.rename(aside)
    main.mkdir()  # os.replace of a file onto a directory: EISDIR, for root too
    call = Call(lambda: store.accept_page(KF, "c2", [item("m2")], owner="host-a", lease_seconds=LONG))
    wait_for_outage_warning(logs)
    assert call.running
    main.rmdir()
    aside.rename(main)
    assert ids(call.wait().result) == ["m2"]
    assert store.load_cursor(KF) == "c2"
    assert ids(store.claim_pending(KF, "host-b", LONG)) == ["m1"]  # m2 is host-a's, as accepted
    store.close()
    again = JsonFileStore(tmp_path / "state")
    assert (again.load_cursor(KF), ids(again.pending(KF))) == ("c2", ["m1", "m2"])
    again.close()


def test_calls_that_succeed_during_the_outage_do_not_end_it(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    # Reads of a JSON store never fail (they are served from memory), nor do a read-only Redis's: while
    # a write keeps failing, the store is not "available again", and the outage is still one WARNING.
    backend = JsonFileStore(tmp_path)
    store = ResilientStore(backend)
    store.accept_page(KF, "c1", [item("m1")])
    backend.compact()
    journal = tmp_path / JOURNAL_NAME
    journal.unlink()
    journal.mkdir()
    call = Call(lambda: store.finish(KF, "m1"))
    for _ in range(3):  # a read between each two failed attempts of the finish
        seen = len([r for r in logs.records if r.name == LOGGER])
        wait_until(lambda n=seen: len([r for r in logs.records if r.name == LOGGER]) > n, WAIT, "a retry")
        assert store.load_cursor(KF) == "c1"
    assert call.running
    journal.rmdir()
    assert call.wait().error is None
    assert len(outage_records(logs, logging.WARNING)) == 1
    assert len(outage_records(logs, logging.INFO)) == 1
    store.close()
