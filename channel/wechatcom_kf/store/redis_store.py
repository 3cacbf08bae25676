"""State store in Redis, shared by several instances of the channel; Redis Cluster safe.

Every key of one account carries the account as a hash tag, ``<prefix>{<kfid>}:<name>``, so each Lua
script touches keys of one slot only, all passed as KEYS (what Redis Cluster and cluster proxies
require): ``cursor`` string; ``pending`` hash msgid -> item JSON; ``order`` sorted set msgid -> accept
sequence; ``seq`` counter; ``claim`` hash msgid -> ``<lease expiry ms>:<owner>``; ``seen:<msgid>`` =
``p`` while pending, ``d`` once done (expires after ``done_ttl_seconds``); ``pull`` the newest
requested callback token (expires after ``PULL_REQUEST_TTL_SECONDS``); ``lock`` the account lock
(redis-py's ``Lock``, owner as its token). Outside any account: ``<prefix>accounts`` (a set of the
accounts seen, for the pulls at start) and ``<prefix>value:<key>``. Leases are measured on the Redis
server's clock (``TIME``), so instances' clocks may disagree. Durability is whatever the server is
configured for (AOF ``appendfsync everysec`` or stricter is advised).

Redis errors that may pass (connection refused or reset, timeouts, a replica being promoted) are
raised as ``StoreUnavailable`` so the caller can retry; the layout of older versions (key names built
in the scripts, one Redis only) is migrated once at start.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    ClusterDownError,
    LockError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)

from .base import (
    CLAIM_LEASE_SECONDS,
    DONE_TTL_SECONDS,
    PULL_REQUEST_TTL_SECONDS,
    RawItem,
    StoreError,
    StoreUnavailable,
)
from .redis_migration import migrate_layout_1

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
local function lease_owner(lease)
  return string.sub(lease, string.find(lease, ':', 1, true) + 1)
end
"""

# KEYS: cursor, pending, order, seq, claim, n seen keys of the new items, m seen keys of the skipped.
# ARGV: done ttl ms, has_cursor, cursor, owner ('' = unclaimed), lease ms, n, m, n * (msgid, item json),
# m * skipped msgid. Returns the accepted msgids in order: new ones, and ones this owner accepted before.
_ACCEPT_LUA = (
    _LUA_HELPERS
    + """
local ttl, owner, n, m = ARGV[1], ARGV[4], tonumber(ARGV[6]), tonumber(ARGV[7])
local lease = nil
if owner ~= '' then
  lease = string.format('%d:%s', now_ms() + tonumber(ARGV[5]), owner)
end
local accepted, taken = {}, {}
for k = 1, n do
  local id, body = ARGV[6 + 2 * k], ARGV[7 + 2 * k]
  local seen = KEYS[5 + k]
  if taken[id] then
    -- the same msgid twice in one page: accepted once
  elseif redis.call('SET', seen, 'p', 'NX') then
    redis.call('HSET', KEYS[2], id, body)
    redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[4]), id)
    if lease then
      redis.call('HSET', KEYS[5], id, lease)
    end
    accepted[#accepted + 1] = id
    taken[id] = true
  elseif lease and redis.call('GET', seen) == 'p' then
    local held = redis.call('HGET', KEYS[5], id)
    if held and lease_owner(held) == owner then
      redis.call('HSET', KEYS[5], id, lease)  -- a repeated call: the same items, the new lease
      accepted[#accepted + 1] = id
      taken[id] = true
    end
  end
end
for k = 1, m do
  redis.call('SET', KEYS[5 + n + k], 'd', 'PX', ttl, 'NX')
end
if ARGV[2] == '1' then
  redis.call('SET', KEYS[1], ARGV[3])
end
return accepted
"""
)

# KEYS: seen, pending, claim, order. ARGV: msgid, done ttl ms.
_FINISH_LUA = """
if redis.call('GET', KEYS[1]) == 'p' then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
end
redis.call('SET', KEYS[1], 'd', 'PX', ARGV[2])
return 1
"""

# KEYS: pending, order. Returns item JSONs, oldest first.
_PENDING_LUA = (
    _LUA_HELPERS
    + """
return hmget_all(KEYS[1], redis.call('ZRANGE', KEYS[2], 0, -1))
"""
)

# KEYS: pending, order, claim. ARGV: owner, lease ms. Claims the items nobody holds (no lease, or an
# expired one); returns their JSONs, oldest first.
_CLAIM_LUA = (
    _LUA_HELPERS
    + """
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
if #ids == 0 then
  return {}
end
local now = now_ms()
local value = string.format('%d:%s', now + tonumber(ARGV[2]), ARGV[1])
local leases = hmget_all(KEYS[3], ids)
local claimed = {}
for k, id in ipairs(ids) do
  local lease = leases[k]
  if not lease or tonumber(string.match(lease, '^(%d+):')) <= now then
    redis.call('HSET', KEYS[3], id, value)
    claimed[#claimed + 1] = id
  end
end
return hmget_all(KEYS[1], claimed)
"""
)

# KEYS: claim. ARGV: owner, lease ms, msgid... Extends the owner's claims; others are left alone.
_RENEW_LUA = (
    _LUA_HELPERS
    + """
local value = string.format('%d:%s', now_ms() + tonumber(ARGV[2]), ARGV[1])
for k = 3, #ARGV do
  local lease = redis.call('HGET', KEYS[1], ARGV[k])
  if lease and lease_owner(lease) == ARGV[1] then
    redis.call('HSET', KEYS[1], ARGV[k], value)
  end
end
return 0
"""
)

# KEYS: pull request. Returns its token and deletes it (GETDEL needs Redis 6.2).
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


# Answers that pass: a replica being promoted, a cluster failing over or resharding, a server loading
# its data or out of memory. Other error answers (a script or type error) are bugs and stay errors.
_TRANSIENT_ANSWERS = (ReadOnlyError, ClusterDownError, TryAgainError, BusyLoadingError, OutOfMemoryError)


@contextmanager
def _unavailable_on_redis_errors() -> Iterator[None]:
    """Redis errors that can pass become StoreUnavailable; refused credentials a StoreError."""
    try:
        yield
    except (AuthenticationError, AuthorizationError, NoPermissionError) as exc:
        raise StoreError(
            f"Redis refused the credentials or permissions of wechatcom_kf_redis_url ({type(exc).__name__})"
        ) from exc
    except _TRANSIENT_ANSWERS as exc:
        raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc
    except ResponseError:
        raise
    except (redis.RedisError, RedisClusterException) as exc:  # connections, timeouts, cluster topology
        raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc


class RedisStore:
    """:class:`~.base.StateStore` backed by Redis (one server, or a cluster); thread- and process-safe."""

    def __init__(
        self,
        url_or_client: str | redis.Redis | RedisCluster,
        *,
        prefix: str = "wechatcom_kf:",
        done_ttl_seconds: float = DONE_TTL_SECONDS,
        socket_timeout: float = 5.0,
        cluster: bool = False,
    ) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError("wechatcom_kf_redis_prefix must not contain '{' or '}' (they mark hash tags)")
        self._redis: Any
        if isinstance(url_or_client, str):
            make = RedisCluster.from_url if cluster else redis.Redis.from_url
            self._redis = make(
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
        self._pending = self._redis.register_script(_PENDING_LUA)
        self._claim = self._redis.register_script(_CLAIM_LUA)
        self._renew = self._redis.register_script(_RENEW_LUA)
        self._take_pull = self._redis.register_script(_TAKE_PULL_LUA)
        self._indexed: set[str] = set()  # accounts known to be in the index (saves a SADD per page)
        if not isinstance(self._redis, RedisCluster):
            with _unavailable_on_redis_errors():
                migrate_layout_1(self._redis, prefix, self._account_key)

    def _account_key(self, open_kfid: str, name: str) -> str:
        return f"{self._prefix}{{{open_kfid}}}:{name}"

    def _global_key(self, name: str) -> str:
        return self._prefix + name

    # --- Inbox ------------------------------------------------------------------------------------

    def load_cursor(self, open_kfid: str) -> str | None:
        with _unavailable_on_redis_errors():
            value = self._redis.get(self._account_key(open_kfid, "cursor"))
        return None if value is None else _text(value)

    def accept_page(
        self,
        open_kfid: str,
        next_cursor: str | None,
        new_items: Sequence[RawItem],
        skipped_ids: Sequence[str] = (),
        owner: str = "",
        lease_seconds: float = CLAIM_LEASE_SECONDS,
    ) -> list[RawItem]:
        by_id: dict[str, RawItem] = {}
        argv: list[Any] = [self._ttl_ms, "0" if next_cursor is None else "1", next_cursor or "", owner]
        argv += [_ms(lease_seconds), len(new_items), len(skipped_ids)]
        seen_keys: list[str] = []
        for item in new_items:
            msgid = item.get("msgid")
            if not isinstance(msgid, str):
                raise ValueError("every item needs a string msgid")
            by_id.setdefault(msgid, item)
            argv += [msgid, json.dumps(item, ensure_ascii=False)]
            seen_keys.append(self._account_key(open_kfid, "seen:" + msgid))
        argv += list(skipped_ids)
        seen_keys += [self._account_key(open_kfid, "seen:" + msgid) for msgid in skipped_ids]
        keys = [self._account_key(open_kfid, name) for name in ("cursor", "pending", "order", "seq", "claim")]
        with _unavailable_on_redis_errors():
            accepted = self._accept(keys=keys + seen_keys, args=argv)
            self._index(open_kfid)
        return [by_id[_text(msgid)] for msgid in accepted]

    def _index(self, open_kfid: str) -> None:
        if open_kfid not in self._indexed:
            self._redis.sadd(self._global_key("accounts"), open_kfid)
            self._indexed.add(open_kfid)

    def pending(self, open_kfid: str) -> list[RawItem]:
        keys = [self._account_key(open_kfid, "pending"), self._account_key(open_kfid, "order")]
        with _unavailable_on_redis_errors():
            rows = self._pending(keys=keys)
        return [json.loads(_text(row)) for row in rows if row is not None]

    def known_accounts(self) -> list[str]:
        """The indexed accounts that have a cursor or pending items (the index may hold others)."""
        with _unavailable_on_redis_errors():
            members = sorted(_text(kfid) for kfid in self._redis.smembers(self._global_key("accounts")))
            return [
                kfid
                for kfid in members
                if self._redis.exists(self._account_key(kfid, "cursor"))
                or self._redis.zcard(self._account_key(kfid, "order"))
            ]

    def pending_accounts(self) -> list[str]:
        with _unavailable_on_redis_errors():
            members = sorted(_text(kfid) for kfid in self._redis.smembers(self._global_key("accounts")))
            return [kfid for kfid in members if self._redis.zcard(self._account_key(kfid, "order"))]

    def claim_pending(self, open_kfid: str, owner: str, lease_seconds: float) -> list[RawItem]:
        keys = [self._account_key(open_kfid, name) for name in ("pending", "order", "claim")]
        with _unavailable_on_redis_errors():
            rows = self._claim(keys=keys, args=[owner, _ms(lease_seconds)])
        return [json.loads(_text(row)) for row in rows if row is not None]

    def renew_claims(self, open_kfid: str, owner: str, msgids: Sequence[str], lease_seconds: float) -> None:
        if msgids:
            with _unavailable_on_redis_errors():
                self._renew(
                    keys=[self._account_key(open_kfid, "claim")], args=[owner, _ms(lease_seconds), *msgids]
                )

    def finish(self, open_kfid: str, msgid: str) -> None:
        keys = [self._account_key(open_kfid, "seen:" + msgid)]
        keys += [self._account_key(open_kfid, name) for name in ("pending", "claim", "order")]
        with _unavailable_on_redis_errors():
            self._finish(keys=keys, args=[msgid, self._ttl_ms])

    # --- AccountLocks -------------------------------------------------------------------------------

    def _lock(self, open_kfid: str, ttl_seconds: float) -> Any:
        return self._redis.lock(
            self._account_key(open_kfid, "lock"), timeout=ttl_seconds, blocking=False, thread_local=False
        )

    def try_lock(self, open_kfid: str, owner: str, ttl_seconds: float) -> bool:
        lock = self._lock(open_kfid, ttl_seconds)
        with _unavailable_on_redis_errors():
            if lock.acquire(token=owner):
                return True
            lock.local.token = owner.encode("utf-8")
            try:
                lock.reacquire()  # ours already: extend it to ttl_seconds
            except LockError:
                return False
            return True

    def unlock(self, open_kfid: str, owner: str) -> None:
        lock = self._lock(open_kfid, 1.0)
        lock.local.token = owner.encode("utf-8")
        # Not ours (expired and taken by another): nothing to release.
        with _unavailable_on_redis_errors(), contextlib.suppress(LockError):
            lock.release()

    def request_pull(self, open_kfid: str, token: str) -> None:
        with _unavailable_on_redis_errors():
            self._redis.set(self._account_key(open_kfid, "pull"), token, px=_ms(PULL_REQUEST_TTL_SECONDS))

    def take_pull_request(self, open_kfid: str) -> str | None:
        with _unavailable_on_redis_errors():
            value = self._take_pull(keys=[self._account_key(open_kfid, "pull")])
        return None if value is None else _text(value)

    # --- KeyValues ----------------------------------------------------------------------------------

    def get_value(self, key: str) -> str | None:
        with _unavailable_on_redis_errors():
            value = self._redis.get(self._global_key("value:" + key))
        return None if value is None else _text(value)

    def set_value(self, key: str, value: str | None, ttl_seconds: float | None) -> None:
        name = self._global_key("value:" + key)
        with _unavailable_on_redis_errors():
            if value is None:
                self._redis.delete(name)
            elif ttl_seconds is None:
                self._redis.set(name, value)
            else:
                self._redis.set(name, value, px=_ms(ttl_seconds))

    # --- lifecycle ----------------------------------------------------------------------------------

    def flush(self) -> None:
        """Every call is already applied on the server; nothing is buffered here."""

    def maintain(self) -> None:
        """Redis expires keys itself."""

    def close(self) -> None:
        if self._own_client:
            self._redis.close()
