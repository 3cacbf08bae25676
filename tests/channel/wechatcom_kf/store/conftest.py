"""Backends for the store contract suite: a JSON file in a temp dir and a real redis-server."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from channel.wechatcom_kf.store.json_store import JsonFileStore
from channel.wechatcom_kf.store.redis_store import RedisStore


@dataclass
class Backend:
    """Creates stores of one kind that share state; ``advance`` moves their clock forward."""

    name: str
    make: Callable[..., Any]
    advance: Callable[[float], None]
    short_ttl: float  # a TTL that ``advance(2 * short_ttl)`` surely expires
    directory: Path | None = None
    opened: list[Any] = field(default_factory=list)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["json", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "json":
        clock = FakeClock()

        def make_json(done_ttl_seconds: float = 3 * 86400) -> JsonFileStore:
            store = JsonFileStore(tmp_path, done_ttl_seconds=done_ttl_seconds, clock=clock, commit_delay=0.01)
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
        store.close()
