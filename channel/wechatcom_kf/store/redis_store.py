"""State store in Redis, shared by several instances of the channel.

Keys (all under ``prefix``): ``cursor:<kfid>`` string; ``pending:<kfid>`` hash msgid -> item JSON;
``order:<kfid>`` sorted set msgid -> accept sequence; ``seq`` counter; ``seen:<msgid>`` = ``p:<kfid>``
while pending (no expiry) and ``d`` once done (expires after ``done_ttl_seconds``); ``flag:<key>``;
``lock:<kfid>`` = owner with a PX expiry. Multi-key updates run as Lua scripts, so each is atomic.
Durability is whatever the Redis server is configured for (AOF ``appendfsync everysec`` or stricter is
advised). Scripts touch keys built from the prefix, so this targets a single Redis, not Redis Cluster.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import redis

from .base import DONE_TTL_SECONDS

logger = logging.getLogger(__name__)

# KEYS: cursor, pending hash, order zset, seq. ARGV: seen prefix, kfid, done ttl ms, has_cursor, cursor,
# n, n * (msgid, item json), m, m * skipped msgid. Returns the accepted msgids in order.
_ACCEPT_LUA = """
local seen, kfid, ttl = ARGV[1], ARGV[2], ARGV[3]
local n = tonumber(ARGV[6])
local i = 7
local accepted = {}
for _ = 1, n do
  local id, body = ARGV[i], ARGV[i + 1]
  i = i + 2
  if redis.call('SET', seen .. id, 'p:' .. kfid, 'NX') then
    local seq = redis.call('INCR', KEYS[4])
    redis.call('HSET', KEYS[2], id, body)
    redis.call('ZADD', KEYS[3], seq, id)
    accepted[#accepted + 1] = id
  end
end
local m = tonumber(ARGV[i])
for k = 1, m do
  redis.call('SET', seen .. ARGV[i + k], 'd', 'PX', ttl, 'NX')
end
if ARGV[4] == '1' then
  redis.call('SET', KEYS[1], ARGV[5])
end
return accepted
"""

# KEYS: seen key. ARGV: key prefix, msgid, done ttl ms.
_FINISH_LUA = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 2) == 'p:' then
  local kfid = string.sub(v, 3)
  redis.call('HDEL', ARGV[1] .. 'pending:' .. kfid, ARGV[2])
  redis.call('ZREM', ARGV[1] .. 'order:' .. kfid, ARGV[2])
end
redis.call('SET', KEYS[1], 'd', 'PX', ARGV[3])
return 1
"""

# KEYS: lock key. ARGV: owner, ttl ms. Same owner extends; another live owner keeps it.
_LOCK_LUA = """
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS: lock key. ARGV: owner. Deletes only the owner's lock.
_UNLOCK_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: pending hash, order zset. Returns item JSONs, oldest first.
_PENDING_LUA = """
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
if #ids == 0 then
  return {}
end
return redis.call('HMGET', KEYS[1], unpack(ids))
"""


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisStore:
    """:class:`~.base.StateStore` backed by Redis; safe across threads and processes."""

    def __init__(
        self,
        url_or_client: str | redis.Redis,
        *,
        prefix: str = "wechatcom_kf:",
        done_ttl_seconds: float = DONE_TTL_SECONDS,
        socket_timeout: float = 5.0,
    ) -> None:
        if isinstance(url_or_client, str):
            self._redis = redis.Redis.from_url(
                url_or_client, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
            )
            self._own_client = True
        else:
            self._redis = url_or_client
            self._own_client = False
        self._prefix = prefix
        self._ttl_ms = _ms(done_ttl_seconds)
        self._accept = self._redis.register_script(_ACCEPT_LUA)
        self._finish = self._redis.register_script(_FINISH_LUA)
        self._lock = self._redis.register_script(_LOCK_LUA)
        self._unlock = self._redis.register_script(_UNLOCK_LUA)
        self._pending = self._redis.register_script(_PENDING_LUA)

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    def load_cursor(self, open_kfid: str) -> str | None:
        value = self._redis.get(self._key("cursor", open_kfid))
        return None if value is None else _text(value)

    def accept_page(
        self,
        open_kfid: str,
        next_cursor: str | None,
        new_items: list[dict[str, Any]],
        skipped_ids: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        by_id: dict[str, dict[str, Any]] = {}
        argv: list[Any] = [
            self._key("seen", ""),
            open_kfid,
            self._ttl_ms,
            "0" if next_cursor is None else "1",
            next_cursor or "",
            len(new_items),
        ]
        for item in new_items:
            msgid = item.get("msgid")
            if not isinstance(msgid, str):
                raise ValueError("every item needs a string msgid")
            by_id.setdefault(msgid, item)
            argv += [msgid, json.dumps(item, ensure_ascii=False)]
        argv.append(len(skipped_ids))
        argv += list(skipped_ids)
        keys = [
            self._key("cursor", open_kfid),
            self._key("pending", open_kfid),
            self._key("order", open_kfid),
            self._key("seq"),
        ]
        accepted = self._accept(keys=keys, args=argv)
        return [by_id[_text(msgid)] for msgid in accepted]

    def pending(self, open_kfid: str) -> list[dict[str, Any]]:
        rows = self._pending(keys=[self._key("pending", open_kfid), self._key("order", open_kfid)])
        return [json.loads(_text(row)) for row in rows if row is not None]

    def finish(self, msgid: str) -> None:
        self._finish(keys=[self._key("seen", msgid)], args=[self._prefix, msgid, self._ttl_ms])

    def get_flag(self, key: str) -> str | None:
        value = self._redis.get(self._key("flag", key))
        return None if value is None else _text(value)

    def set_flag(self, key: str, value: str | None, ttl_seconds: float | None) -> None:
        name = self._key("flag", key)
        if value is None:
            self._redis.delete(name)
        elif ttl_seconds is None:
            self._redis.set(name, value)
        else:
            self._redis.set(name, value, px=_ms(ttl_seconds))

    def try_lock(self, open_kfid: str, owner: str, ttl_seconds: float) -> bool:
        return bool(self._lock(keys=[self._key("lock", open_kfid)], args=[owner, _ms(ttl_seconds)]))

    def unlock(self, open_kfid: str, owner: str) -> None:
        self._unlock(keys=[self._key("lock", open_kfid)], args=[owner])

    def flush(self) -> None:
        """Every call is already applied on the server; nothing is buffered here."""

    def close(self) -> None:
        if self._own_client:
            self._redis.close()
