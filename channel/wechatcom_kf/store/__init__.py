"""State store backends: JSON file (default, one instance) and Redis (several instances)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import (
    CLAIM_LEASE_SECONDS,
    DONE_TTL_SECONDS,
    PULL_REQUEST_TTL_SECONDS,
    AccountLocks,
    Inbox,
    KeyValues,
    StateStore,
    StoreError,
    StoreUnavailable,
)
from .json_store import JsonFileStore
from .resilient import ResilientStore

if TYPE_CHECKING:
    from .redis_store import RedisStore

__all__ = [
    "CLAIM_LEASE_SECONDS",
    "DONE_TTL_SECONDS",
    "PULL_REQUEST_TTL_SECONDS",
    "AccountLocks",
    "Inbox",
    "JsonFileStore",
    "KeyValues",
    "RedisStore",
    "ResilientStore",
    "StateStore",
    "StoreError",
    "StoreUnavailable",
]


def __getattr__(name: str) -> Any:
    # redis-py is needed only by deployments that use it.
    if name == "RedisStore":
        from .redis_store import RedisStore

        return RedisStore
    raise AttributeError(name)
