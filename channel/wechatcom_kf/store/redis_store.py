"""State store in Redis, shared by several instances of the channel.

Keys (all under ``prefix``): ``cursor:<kfid>`` string; ``pending:<kfid>`` hash msgid -> item JSON;
``order:<kfid>`` sorted set msgid -> accept sequence; ``seq`` counter; ``seen:<msgid>`` = ``p:<kfid>``
while pending (no expiry) and ``d`` once done (expires after ``done_ttl_seconds``); ``claim:<kfid>``
hash msgid -> ``<lease expiry ms>:<owner>`` for claimed pending items; ``accounts`` set of the kfids
with pending items (``accounts_indexed`` marks that it was built from the keys of older versions);
``pull:<kfid>`` = the newest requested callback token (expires after ``PULL_REQUEST_TTL_SECONDS``);
``flag:<key>``; ``lock:<kfid>`` = owner with a PX expiry. Multi-key updates run as Lua scripts, so each is
atomic; leases are measured on the Redis server's clock (``TIME``), so instances' clocks may disagree.
Durability is whatever the Redis server is configured for (AOF ``appendfsync everysec`` or stricter is
advised). Scripts touch keys built from the prefix, so this targets a single Redis, not Redis Cluster.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import redis

from .base import CLAIM_LEASE_SECONDS, DONE_TTL_SECONDS, PULL_REQUEST_TTL_SECONDS

logger = logging.getLogger(__name__)

# Shared Lua helpers. Redis < 7 must be told to replicate effects before a script writes after TIME.
# HMGET goes in chunks: unpack() of a huge backlog would overflow Lua's C stack.
_LUA_HELPERS = """
if redis.replicate_commands then redis.replicate_commands() end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function hmget_all(key, ids)
  local out = {}
  for s = 1, #ids, 1000 do
    local rows = redis.call('HMGET', key, unpack(ids, s, math.min(s + 999, #ids)))
    for _, row in ipairs(rows) do out[#out + 1] = row end
  end
  return out
end
local function lease_value(lease_ms, owner)
  return string.format('%d:%s', now_ms() + tonumber(lease_ms), owner)
end
"""

# KEYS: cursor, pending hash, order zset, seq, claim hash, accounts set. ARGV: seen prefix, kfid,
# done ttl ms, has_cursor, cursor, owner ('' = unclaimed), lease ms, n, n * (msgid, item json), m,
# m * skipped msgid. Returns the accepted msgids in order.
_ACCEPT_LUA = (
    _LUA_HELPERS
    + """
local seen, kfid, ttl, owner = ARGV[1], ARGV[2], ARGV[3], ARGV[6]
local n = tonumber(ARGV[8])
local i = 9
local accepted = {}
local lease = nil
if owner ~= '' then
  lease = lease_value(ARGV[7], owner)
end
for _ = 1, n do
  local id, body = ARGV[i], ARGV[i + 1]
  i = i + 2
  if redis.call('SET', seen .. id, 'p:' .. kfid, 'NX') then
    local seq = redis.call('INCR', KEYS[4])
    redis.call('HSET', KEYS[2], id, body)
    redis.call('ZADD', KEYS[3], seq, id)
    if lease then
      redis.call('HSET', KEYS[5], id, lease)
    end
    accepted[#accepted + 1] = id
  end
end
if #accepted > 0 then
  redis.call('SADD', KEYS[6], kfid)
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
)

# KEYS: seen key. ARGV: key prefix, msgid, done ttl ms.
_FINISH_LUA = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 2) == 'p:' then
  local kfid = string.sub(v, 3)
  redis.call('HDEL', ARGV[1] .. 'pending:' .. kfid, ARGV[2])
  redis.call('HDEL', ARGV[1] .. 'claim:' .. kfid, ARGV[2])
  redis.call('ZREM', ARGV[1] .. 'order:' .. kfid, ARGV[2])
  if redis.call('EXISTS', ARGV[1] .. 'order:' .. kfid) == 0 then
    redis.call('SREM', ARGV[1] .. 'accounts', kfid)
  end
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
_PENDING_LUA = (
    _LUA_HELPERS
    + """
return hmget_all(KEYS[1], redis.call('ZRANGE', KEYS[2], 0, -1))
"""
)

# KEYS: pending hash, order zset, claim hash. ARGV: owner, lease ms, limit (-1 = all). Claims the items
# nobody holds (no lease, or an expired one); returns their JSONs, oldest first.
_CLAIM_LUA = (
    _LUA_HELPERS
    + """
local limit = tonumber(ARGV[3])
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
if #ids == 0 or limit == 0 then
  return {}
end
local now = now_ms()
local value = lease_value(ARGV[2], ARGV[1])
local leases = hmget_all(KEYS[3], ids)
local claimed = {}
for k, id in ipairs(ids) do
  local lease = leases[k]
  if not lease or tonumber(string.match(lease, '^(%d+):')) <= now then
    redis.call('HSET', KEYS[3], id, value)
    claimed[#claimed + 1] = id
    if #claimed == limit then
      break
    end
  end
end
return hmget_all(KEYS[1], claimed)
"""
)

# ARGV: key prefix, owner, lease ms, msgid... Extends the owner's claims among the msgids that are
# still pending; another owner's claim and finished items are left alone.
_RENEW_LUA = (
    _LUA_HELPERS
    + """
local prefix, owner = ARGV[1], ARGV[2]
local value = lease_value(ARGV[3], owner)
for k = 4, #ARGV do
  local id = ARGV[k]
  local v = redis.call('GET', prefix .. 'seen:' .. id)
  if v and string.sub(v, 1, 2) == 'p:' then
    local key = prefix .. 'claim:' .. string.sub(v, 3)
    local lease = redis.call('HGET', key, id)
    if lease and string.sub(lease, string.find(lease, ':', 1, true) + 1) == owner then
      redis.call('HSET', key, id, value)
    end
  end
end
return 0
"""
)

# KEYS: accounts set. ARGV: key prefix. Lists the kfids whose order zset exists (Redis deletes an
# empty one) and drops the others: an index built from keys of older versions may hold stale entries.
_ACCOUNTS_LUA = """
local out = {}
for _, kfid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. 'order:' .. kfid) == 1 then
    out[#out + 1] = kfid
  else
    redis.call('SREM', KEYS[1], kfid)
  end
end
return out
"""

# KEYS: pull request key. Returns its token and deletes it.
_TAKE_PULL_LUA = """
local v = redis.call('GET', KEYS[1])
if v then
  redis.call('DEL', KEYS[1])
end
return v
"""


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


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
        self._claim = self._redis.register_script(_CLAIM_LUA)
        self._renew = self._redis.register_script(_RENEW_LUA)
        self._accounts = self._redis.register_script(_ACCOUNTS_LUA)
        self._take_pull = self._redis.register_script(_TAKE_PULL_LUA)
        self._indexed = False

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
        owner: str | None = None,
        lease_seconds: float = CLAIM_LEASE_SECONDS,
    ) -> list[dict[str, Any]]:
        by_id: dict[str, dict[str, Any]] = {}
        argv: list[Any] = [
            self._key("seen", ""),
            open_kfid,
            self._ttl_ms,
            "0" if next_cursor is None else "1",
            next_cursor or "",
            owner or "",
            _ms(lease_seconds),
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
            self._key("claim", open_kfid),
            self._key("accounts"),
        ]
        accepted = self._accept(keys=keys, args=argv)
        return [by_id[_text(msgid)] for msgid in accepted]

    def pending(self, open_kfid: str) -> list[dict[str, Any]]:
        rows = self._pending(keys=[self._key("pending", open_kfid), self._key("order", open_kfid)])
        return [json.loads(_text(row)) for row in rows if row is not None]

    def pending_accounts(self) -> list[str]:
        self._index_accounts_once()
        kfids = self._accounts(keys=[self._key("accounts")], args=[self._prefix])
        return sorted(_text(kfid) for kfid in kfids)

    def claim_pending(
        self, open_kfid: str, owner: str, lease_seconds: float, limit: int | None = None
    ) -> list[dict[str, Any]]:
        if limit is not None and limit < 0:
            raise ValueError("limit must be None or >= 0")
        keys = [self._key("pending", open_kfid), self._key("order", open_kfid), self._key("claim", open_kfid)]
        rows = self._claim(keys=keys, args=[owner, _ms(lease_seconds), -1 if limit is None else limit])
        return [json.loads(_text(row)) for row in rows if row is not None]

    def renew_claims(self, owner: str, msgids: Sequence[str], lease_seconds: float) -> None:
        if msgids:
            self._renew(args=[self._prefix, owner, _ms(lease_seconds), *msgids])

    def request_pull(self, open_kfid: str, token: str) -> None:
        self._redis.set(self._key("pull", open_kfid), token, px=_ms(PULL_REQUEST_TTL_SECONDS))

    def take_pull_request(self, open_kfid: str) -> str | None:
        value = self._take_pull(keys=[self._key("pull", open_kfid)])
        return None if value is None else _text(value)

    def _index_accounts_once(self) -> None:
        """Add accounts that got pending items before the ``accounts`` set existed (older versions)."""
        if self._indexed:
            return
        marker = self._key("accounts_indexed")
        if not self._redis.exists(marker):
            head = len(self._key("order", ""))
            pattern = _glob_escape(self._key("order", "")) + "*"
            for name in self._redis.scan_iter(match=pattern, count=1000):
                self._redis.sadd(self._key("accounts"), _text(name)[head:])
            self._redis.set(marker, "1")
        self._indexed = True

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
