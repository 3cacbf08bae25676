"""The state store interface: cursor, message states, per-account locks, claims on pending items and
cross-instance pull requests.

One contract test suite (tests/channel/wechatcom_kf/store/) runs against every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

DONE_TTL_SECONDS = 3 * 86400  # sync_msg's window: a msgid can come back for 3 days
CLAIM_LEASE_SECONDS = 120.0  # default lease of a claim on a pending item
PULL_REQUEST_TTL_SECONDS = 600.0  # a callback token is valid for 10 minutes


@runtime_checkable
class StateStore(Protocol):
    """What the puller and the channel need from persistent state."""

    def load_cursor(self, open_kfid: str) -> str | None:
        """The last ``next_cursor`` saved for the account, or None before the first pull."""
        ...

    def accept_page(
        self,
        open_kfid: str,
        next_cursor: str | None,
        new_items: list[dict[str, Any]],
        skipped_ids: Sequence[str] = (),
        owner: str | None = None,
        lease_seconds: float = CLAIM_LEASE_SECONDS,
    ) -> list[dict[str, Any]]:
        """Atomically and durably: drop items already known (by msgid), add the rest as pending,
        record ``skipped_ids`` as done and set the cursor. Returns the accepted items, oldest first.

        With an ``owner``, the accepted items are claimed by it for ``lease_seconds`` (see
        :meth:`claim_pending`); without one they are unclaimed."""
        ...

    def pending(self, open_kfid: str) -> list[dict[str, Any]]:
        """Accepted and not finished items of the account, oldest first."""
        ...

    def pending_accounts(self) -> list[str]:
        """The accounts that have pending items, sorted."""
        ...

    def claim_pending(
        self, open_kfid: str, owner: str, lease_seconds: float, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Atomically claim for ``owner`` until now + ``lease_seconds`` the account's pending items that
        nobody holds: unclaimed, or whose lease expired (a dead instance's claims expire). Items under a
        live lease, even ``owner``'s own, are left out: they are being handled. Returns the claimed
        items, oldest first, at most ``limit`` of them."""
        ...

    def renew_claims(self, owner: str, msgids: Sequence[str], lease_seconds: float) -> None:
        """Extend to now + ``lease_seconds`` those of ``msgids`` that ``owner`` still holds (an expired
        lease that nobody else claimed since counts); the rest (finished, or another's) are left alone."""
        ...

    def finish(self, msgid: str) -> None:
        """Move ``msgid`` from pending to done, dropping its claim; done ids are remembered for
        ``done_ttl_seconds``."""
        ...

    def request_pull(self, open_kfid: str, token: str) -> None:
        """Ask whoever holds the account's lock to pull again with ``token``; a newer request replaces an
        older one, and a request expires after ``PULL_REQUEST_TTL_SECONDS`` (the token's validity)."""
        ...

    def take_pull_request(self, open_kfid: str) -> str | None:
        """Atomically take and clear the account's newest pull request: its token, or None."""
        ...

    def get_flag(self, key: str) -> str | None:
        """The flag's value, or None when unset or expired."""
        ...

    def set_flag(self, key: str, value: str | None, ttl_seconds: float | None) -> None:
        """Set (or with None clear) a flag, optionally expiring after ``ttl_seconds``."""
        ...

    def try_lock(self, open_kfid: str, owner: str, ttl_seconds: float) -> bool:
        """Take (or, for the same owner, extend) the account's lock; False if another owner holds it."""
        ...

    def unlock(self, open_kfid: str, owner: str) -> None:
        """Release the lock if ``owner`` holds it; otherwise do nothing."""
        ...

    def flush(self) -> None:
        """Make every earlier call durable."""
        ...

    def close(self) -> None:
        """Flush and release resources."""
        ...


class StoreError(RuntimeError):
    """The store cannot be used (e.g. an unreadable state file); the message says what to fix."""
