"""Move the Redis keys of the first layout (names built inside scripts, one Redis only) to the current
one (an account's keys under its hash tag), once, at start.

Carried over: each account's cursor, its pending items in order, and values (takeover flags, reply
plans) with their expiry. Not carried over: done markers (sync_msg never returns what lies before the
saved cursor) and claims (every pending item becomes claimable; upgrade all instances together).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

LAYOUT_VERSION = "2"
_MIGRATION_LOCK_SECONDS = 60


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def migrate_layout_1(client: Any, prefix: str, account_key: Callable[[str, str], str]) -> int:
    """Migrate if the first layout's keys exist; returns the number of accounts moved."""
    marker = prefix + "layout"
    if _text(client.get(marker) or "") == LAYOUT_VERSION:
        return 0
    if not client.set(prefix + "layout_migrating", "1", nx=True, ex=_MIGRATION_LOCK_SECONDS):
        return 0  # another instance is migrating; its result is what we read next
    try:
        moved = 0
        head = len(prefix + "cursor:")
        for name in list(client.scan_iter(match=_glob_escape(prefix + "cursor:") + "*", count=1000)):
            kfid = _text(name)[head:]
            _move_account(client, prefix, kfid, account_key)
            moved += 1
        for name in list(client.scan_iter(match=_glob_escape(prefix + "order:") + "*", count=1000)):
            _move_account(client, prefix, _text(name)[len(prefix + "order:") :], account_key)
            moved += 1  # an account with pending items and no cursor yet
        _move_values(client, prefix)
        client.delete(prefix + "seq", prefix + "accounts_indexed")  # counters of the first layout
        client.set(marker, LAYOUT_VERSION)
    finally:
        client.delete(prefix + "layout_migrating")
    if moved:
        logger.info("moved the Redis state of %d account(s) to the cluster-safe key layout", moved)
    return moved


def _move_account(client: Any, prefix: str, kfid: str, account_key: Callable[[str, str], str]) -> None:
    cursor = client.get(prefix + "cursor:" + kfid)
    if cursor is not None:
        client.set(account_key(kfid, "cursor"), cursor)
    ids = [_text(i) for i in client.zrange(prefix + "order:" + kfid, 0, -1)]
    bodies = client.hmget(prefix + "pending:" + kfid, ids) if ids else []
    for seq, (msgid, body) in enumerate(zip(ids, bodies, strict=True), start=1):
        if body is None:
            continue
        client.hset(account_key(kfid, "pending"), msgid, body)
        client.zadd(account_key(kfid, "order"), {msgid: seq})
        client.set(account_key(kfid, "seen:" + msgid), "p")
        client.delete(prefix + "seen:" + msgid)
    if ids:
        client.set(account_key(kfid, "seq"), len(ids))
    client.sadd(prefix + "accounts", kfid)
    client.delete(
        prefix + "cursor:" + kfid,
        prefix + "order:" + kfid,
        prefix + "pending:" + kfid,
        prefix + "claim:" + kfid,
    )


def _move_values(client: Any, prefix: str) -> None:
    head = len(prefix + "flag:")
    for name in list(client.scan_iter(match=_glob_escape(prefix + "flag:") + "*", count=1000)):
        value, ttl_ms = client.get(name), client.pttl(name)
        if value is not None:
            target = prefix + "value:" + _text(name)[head:]
            if ttl_ms is not None and int(ttl_ms) > 0:
                client.set(target, value, px=int(ttl_ms))
            else:
                client.set(target, value)
        client.delete(name)
