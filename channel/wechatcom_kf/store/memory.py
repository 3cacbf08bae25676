"""In-memory claims on pending items and pull requests, for the single-process JSON store.

Neither is persisted on purpose: a restart is a new process, every claim of the old one died with it,
so everything pending is claimable again; and a pull request only matters to a live lock holder.
The caller serializes access (the JSON store calls these with its lock held).
"""

from __future__ import annotations

from collections.abc import Iterable


class Claims:
    """msgid -> (owner, lease expiry) for pending items."""

    def __init__(self) -> None:
        self._leases: dict[str, tuple[str, float]] = {}

    def take(
        self, msgids: Iterable[str], owner: str, now: float, expires_at: float, limit: int | None
    ) -> list[str]:
        """Claim, in the given order, those of ``msgids`` nobody holds at ``now``; at most ``limit``."""
        taken: list[str] = []
        for msgid in msgids:
            if limit is not None and len(taken) >= limit:
                break
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
