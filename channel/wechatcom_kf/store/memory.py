"""In-memory claims on pending items, account locks and pull requests, for the one-process JSON store.

None is persisted on purpose: a restart is a new process, every claim and lock of the old one died
with it, so everything pending is claimable again; and a pull request only matters to a live lock
holder. The caller serializes access (the JSON store calls these with its lock held).
"""

from __future__ import annotations

from collections.abc import Iterable


class Claims:
    """msgid -> (owner, lease expiry) for pending items."""

    def __init__(self) -> None:
        self._leases: dict[str, tuple[str, float]] = {}

    def take(self, msgids: Iterable[str], owner: str, now: float, expires_at: float) -> list[str]:
        """Claim, in the given order, those of ``msgids`` nobody holds at ``now``."""
        taken: list[str] = []
        for msgid in msgids:
            lease = self._leases.get(msgid)
            if lease is not None and lease[1] > now:
                continue
            self._leases[msgid] = (owner, expires_at)
            taken.append(msgid)
        return taken

    def grant(self, msgids: Iterable[str], owner: str, expires_at: float) -> None:
        """Claim ``msgids`` for ``owner`` unconditionally (they were just accepted)."""
        for msgid in msgids:
            self._leases[msgid] = (owner, expires_at)

    def renew(self, owner: str, msgids: Iterable[str], expires_at: float) -> None:
        for msgid in msgids:
            lease = self._leases.get(msgid)
            if lease is not None and lease[0] == owner:
                self._leases[msgid] = (owner, expires_at)

    def drop(self, msgid: str) -> None:
        self._leases.pop(msgid, None)

    def holder(self, msgid: str) -> str | None:
        lease = self._leases.get(msgid)
        return lease[0] if lease is not None else None


class Locks:
    """open_kfid -> (owner, expiry)."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, float]] = {}

    def take(self, open_kfid: str, owner: str, now: float, expires_at: float) -> bool:
        rec = self._held.get(open_kfid)
        if rec is not None and rec[0] != owner and rec[1] > now:
            return False
        self._held[open_kfid] = (owner, expires_at)
        return True

    def release(self, open_kfid: str, owner: str) -> None:
        rec = self._held.get(open_kfid)
        if rec is not None and rec[0] == owner:
            del self._held[open_kfid]

    def prune(self, now: float) -> None:
        for kfid in [k for k, (_, exp) in self._held.items() if exp <= now]:
            del self._held[kfid]


class PullRequests:
    """open_kfid -> (newest token, expiry)."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, float]] = {}

    def put(self, open_kfid: str, token: str, expires_at: float) -> None:
        self._tokens[open_kfid] = (token, expires_at)

    def take(self, open_kfid: str, now: float) -> str | None:
        rec = self._tokens.pop(open_kfid, None)
        return rec[0] if rec is not None and rec[1] > now else None

    def prune(self, now: float) -> None:
        for kfid in [k for k, (_, exp) in self._tokens.items() if exp <= now]:
            del self._tokens[kfid]
