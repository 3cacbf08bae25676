"""The state the channel keeps, behind three small interfaces.

- ``Inbox``: per account, the sync cursor and the accepted messages until each is finished, with
  claims (owner + lease) so that several instances never handle one message twice;
- ``AccountLocks``: one puller per account across instances, and pull requests between them;
- ``KeyValues``: small values with an expiry (takeover flags, reply plans).

``StateStore`` is all three plus ``flush``/``close``. Backends: ``JsonFileStore`` (one instance) and
``RedisStore`` (several); one contract suite per interface runs against both
(tests/channel/wechatcom_kf/store/). Items are the raw ``sync_msg`` dicts: parsing them is the
inbound side's job (``inbound/items.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

DONE_TTL_SECONDS = 3 * 86400  # sync_msg's window: a msgid can come back for 3 days
CLAIM_LEASE_SECONDS = 120.0  # default lease of a claim on a pending item
PULL_REQUEST_TTL_SECONDS = 600.0  # a callback token is valid for 10 minutes

RawItem = dict[str, Any]


class StoreError(RuntimeError):
    """The store cannot be used as configured (e.g. an unreadable state file); the message says what
    to fix. Not retried."""


class StoreUnavailable(RuntimeError):
    """A transient failure (Redis unreachable, a write that failed): the call may be retried."""


@runtime_checkable
class Inbox(Protocol):
    def load_cursor(self, open_kfid: str) -> str | None:
        """The last ``next_cursor`` saved for the account, or None before its first pull."""
        ...

    def accept_page(
        self,
        open_kfid: str,
        next_cursor: str | None,
        new_items: Sequence[RawItem],
        skipped_ids: Sequence[str] = (),
        owner: str = "",
        lease_seconds: float = CLAIM_LEASE_SECONDS,
    ) -> list[RawItem]:
        """Atomically and durably: drop items already known (by msgid), add the rest as pending and
        claimed by ``owner`` for ``lease_seconds`` ('' = unclaimed), record ``skipped_ids`` as done,
        set the cursor (unless None). Returns the accepted items, oldest first. Repeating a call with
        the same owner (after a failure whose outcome is unknown) returns what it accepted the first
        time."""
        ...

    def pending(self, open_kfid: str) -> list[RawItem]:
        """Accepted and not finished items of the account, oldest first."""
        ...

    def known_accounts(self) -> list[str]:
        """Accounts with a cursor or pending items, sorted (pulled once at start)."""
        ...

    def pending_accounts(self) -> list[str]:
        """Accounts that have pending items, sorted."""
        ...

    def claim_pending(self, open_kfid: str, owner: str, lease_seconds: float) -> list[RawItem]:
        """Atomically claim for ``owner`` until now + ``lease_seconds`` the account's pending items that
        nobody holds (unclaimed, or a lease that expired); oldest first. Items under a live lease,
        ``owner``'s own included, are left out: they are being handled (and every pull job claims, so
        returning them would cost a copy of the whole backlog per pull). A claim whose answer was lost
        is taken again once its lease expires."""
        ...

    def renew_claims(self, open_kfid: str, owner: str, msgids: Sequence[str], lease_seconds: float) -> None:
        """Extend to now + ``lease_seconds`` those of ``msgids`` that ``owner`` still holds."""
        ...

    def finish(self, open_kfid: str, msgid: str) -> None:
        """Durably move ``msgid`` from pending to done (remembered ``DONE_TTL_SECONDS``), dropping its
        claim. Returns once it is durable."""
        ...


@runtime_checkable
class AccountLocks(Protocol):
    def try_lock(self, open_kfid: str, owner: str, ttl_seconds: float) -> bool:
        """Take (or, for the same owner, extend) the account's lock; False if another owner holds it."""
        ...

    def unlock(self, open_kfid: str, owner: str) -> None:
        """Release the lock if ``owner`` holds it; otherwise do nothing."""
        ...

    def request_pull(self, open_kfid: str, token: str) -> None:
        """Ask whoever holds the account's lock to pull again with ``token``; a newer request replaces
        an older one; a request expires after ``PULL_REQUEST_TTL_SECONDS`` (the token's validity)."""
        ...

    def take_pull_request(self, open_kfid: str) -> str | None:
        """Atomically take and clear the account's newest pull request: its token, or None."""
        ...


@runtime_checkable
class KeyValues(Protocol):
    def get_value(self, key: str) -> str | None:
        """The value, or None when unset or expired."""
        ...

    def set_value(self, key: str, value: str | None, ttl_seconds: float | None) -> None:
        """Durably set (None: delete) a value, optionally expiring after ``ttl_seconds``."""
        ...


@runtime_checkable
class StateStore(Inbox, AccountLocks, KeyValues, Protocol):
    def flush(self) -> None:
        """Make every earlier call durable."""
        ...

    def maintain(self) -> None:
        """Periodic housekeeping (expiry, compaction); the channel's maintenance thread calls it."""
        ...

    def close(self) -> None:
        """Flush and release resources."""
        ...
