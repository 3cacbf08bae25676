"""The state store interface: cursor, message states and per-account locks.

One contract test suite (tests/channel/wechatcom_kf/store/) runs against every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

DONE_TTL_SECONDS = 3 * 86400  # sync_msg's window: a msgid can come back for 3 days


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
    ) -> list[dict[str, Any]]:
        """Atomically and durably: drop items already known (by msgid), add the rest as pending,
        record ``skipped_ids`` as done and set the cursor. Returns the accepted items, oldest first."""
        ...

    def pending(self, open_kfid: str) -> list[dict[str, Any]]:
        """Accepted and not finished items of the account, oldest first."""
        ...

    def finish(self, msgid: str) -> None:
        """Move ``msgid`` from pending to done; done ids are remembered for ``done_ttl_seconds``."""
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
