"""Fixtures of the store tests (helpers are in store_helpers.py).

``backend``: the contract suites (``test_contract_*.py``, one per interface) run once per backend: a
JSON file in a temp dir, and the run's shared redis-server isolated by a fresh key prefix.
``redis_servers``: a factory of private redis-servers, for tests that stop and restart one.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from channel.wechatcom_kf.store.json_store import JsonFileStore
from channel.wechatcom_kf.store.redis_store import RedisStore
from tests.channel.wechatcom_kf.store.store_helpers import Backend, FakeClock, RedisServer


@pytest.fixture(params=["json", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    be: Backend
    if request.param == "json":
        clock = FakeClock()

        def make_json(done_ttl_seconds: float = 3 * 86400) -> JsonFileStore:
            store = JsonFileStore(tmp_path, done_ttl_seconds=done_ttl_seconds, clock=clock)
            be.opened.append(store)
            return store

        def advance_clock(seconds: float) -> None:
            clock.now += seconds

        be = Backend("json", make_json, advance_clock, short_ttl=100.0, directory=tmp_path)
    else:
        url = request.getfixturevalue("redis_url")
        prefix = f"t{uuid.uuid4().hex[:8]}:"  # isolates tests sharing the server

        def make_redis(done_ttl_seconds: float = 3 * 86400) -> RedisStore:
            store = RedisStore(url, prefix=prefix, done_ttl_seconds=done_ttl_seconds)
            be.opened.append(store)
            return store

        # Redis expires keys on its own clock; real waiting is the only way to move it.
        be = Backend("redis", make_redis, time.sleep, short_ttl=0.15)
    yield be
    for store in be.opened:
        with contextlib.suppress(Exception):
            store.close()


@pytest.fixture
def redis_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RedisServer]]:
    """``redis_servers(*extra_args)`` starts a private redis-server; all are terminated after the test."""
    started: list[RedisServer] = []

    def start(*extra_args: str) -> RedisServer:
        server = RedisServer(tmp_path_factory.mktemp("private-redis"), tuple(extra_args))
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
