"""State store in files: ``<directory>/wechatcom_kf_cursors.json`` (the upstream file name) plus a journal
of finished msgids beside it, ``wechatcom_kf_done.log``. For a single instance.

The main file holds what is small: each account's cursor and pending items, and flags. ``accept_page`` and
``set_flag`` rewrite it atomically (temp file + fsync + ``os.replace``, 0600) before they return;
compaction rewrites it too. Done ids, the bulk (kept ``done_ttl_seconds`` for dedup), are only appended to
the journal: ``finish`` is group-committed by one flusher thread within ``commit_delay`` seconds (one
write + fsync per batch) and on ``flush()``/``close()``. Losing a finish mark in a crash only re-handles a
message whose sends WeCom then refuses as duplicates. On load, pending = pending in the main file minus
the ids in the journal; every main-file write first appends the finishes it leaves out, so no crash can
drop a finished item from both. Upstream's ``{open_kfid: cursor}`` file and version 1 (done ids inside
the main file) are migrated on load. Claims on pending items, locks and pull requests live in memory only:
one process uses the files, and a restart leaves every pending item claimable, as a crash needs.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import files
from .base import CLAIM_LEASE_SECONDS, DONE_TTL_SECONDS, PULL_REQUEST_TTL_SECONDS
from .journal import JOURNAL_NAME, DoneJournal
from .main_file import FILE_NAME, Account, read_main_file, serialize
from .memory import Claims, PullRequests

logger = logging.getLogger(__name__)

_RETRY_AFTER_WRITE_ERROR = 1.0
_PRUNE_INTERVAL = 60.0  # expired done ids are dropped in batches, at most this often (store clock)
_COMPACT_SLACK = 1024  # dead journal lines tolerated whatever the live count
_JOURNAL_MAX_BYTES = 64 * 1024 * 1024

Entry = tuple[str, float]  # (msgid, expires_at)


class JsonFileStore:
    """:class:`~.base.StateStore` backed by a small JSON file and a done-id journal; thread-safe."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        done_ttl_seconds: float = DONE_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
        commit_delay: float = 0.05,
        journal_max_bytes: int = _JOURNAL_MAX_BYTES,
    ) -> None:
        self.directory = Path(directory)
        self.path = self.directory / FILE_NAME
        self.write_count = 0  # rewrites of the main file, for tests and benchmarks
        self._ttl = float(done_ttl_seconds)
        self._clock = clock
        self._commit_delay = commit_delay
        self._journal_max_bytes = journal_max_bytes
        self._lock = threading.Lock()  # guards the in-memory state
        self._cond = threading.Condition(self._lock)  # wakes the flusher
        self._write_lock = threading.Lock()  # orders snapshot + write pairs
        self._wake = threading.Event()  # cuts the flusher's gather delay short on close
        self._accounts: dict[str, Account] = {}
        self._where: dict[str, str] = {}  # pending msgid -> open_kfid
        self._done: dict[str, float] = {}  # msgid -> expires_at; insertion order = expiry order
        self._unjournaled: list[Entry] = []  # finished, not yet appended to the journal
        self._main_stale = False  # the main file still lists items finished since
        self._flags: dict[str, tuple[str, float | None]] = {}
        self._locks: dict[str, tuple[str, float]] = {}  # open_kfid -> (owner, expires_at); not persisted
        self._claims = Claims()
        self._pull_requests = PullRequests()
        self._closed = False
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        files.remove_stale_temp_files(self.directory, FILE_NAME)
        files.remove_stale_temp_files(self.directory, JOURNAL_NAME)
        self.journal = DoneJournal(self.directory / JOURNAL_NAME)
        self._open()
        self._next_prune = self._clock() + min(_PRUNE_INTERVAL, self._ttl / 4)
        self._flusher = threading.Thread(target=self._flush_loop, name="kf-store-flush", daemon=True)
        self._flusher.start()

    # --- StateStore -------------------------------------------------------------------------------

    def load_cursor(self, open_kfid: str) -> str | None:
        with self._lock:
            acc = self._accounts.get(open_kfid)
            return acc.cursor if acc else None

    def accept_page(
        self,
        open_kfid: str,
        next_cursor: str | None,
        new_items: list[dict[str, Any]],
        skipped_ids: Sequence[str] = (),
        owner: str | None = None,
        lease_seconds: float = CLAIM_LEASE_SECONDS,
    ) -> list[dict[str, Any]]:
        for item in new_items:
            if not isinstance(item.get("msgid"), str):
                raise ValueError("every item needs a string msgid")
        with self._write_lock:
            with self._lock:
                acc = self._accounts.setdefault(open_kfid, Account())
                old_cursor = acc.cursor
                accepted = self._add_pending_locked(open_kfid, acc, new_items)
                if owner:  # '' = no owner, as in Redis
                    self._claims.grant([it["msgid"] for it in accepted], owner, self._clock() + lease_seconds)
                newly_done = self._mark_done_locked(skipped_ids)
                if next_cursor is not None:
                    acc.cursor = next_cursor
                queued = self._take_unjournaled_locked()
                data = self._serialize_locked()

            def undo(journaled: bool) -> None:  # not durable, so not accepted: the caller retries
                for it in accepted:
                    acc.pending.pop(it["msgid"], None)
                    self._where.pop(it["msgid"], None)
                    self._claims.drop(it["msgid"])
                if not journaled:
                    for msgid, _ in newly_done:
                        self._done.pop(msgid, None)
                acc.cursor = old_cursor

            self._persist(queued, newly_done, data, undo)
        return accepted

    def pending(self, open_kfid: str) -> list[dict[str, Any]]:
        with self._lock:
            acc = self._accounts.get(open_kfid)
            return list(acc.pending.values()) if acc else []

    def pending_accounts(self) -> list[str]:
        with self._lock:
            return sorted(kfid for kfid, acc in self._accounts.items() if acc.pending)

    def claim_pending(
        self, open_kfid: str, owner: str, lease_seconds: float, limit: int | None = None
    ) -> list[dict[str, Any]]:
        if limit is not None and limit < 0:
            raise ValueError("limit must be None or >= 0")
        with self._lock:
            acc = self._accounts.get(open_kfid)
            if acc is None:
                return []
            now = self._clock()
            taken = self._claims.take(acc.pending, owner, now, now + lease_seconds, limit)
            return [dict(acc.pending[msgid]) for msgid in taken]

    def renew_claims(self, owner: str, msgids: Sequence[str], lease_seconds: float) -> None:
        with self._lock:
            self._claims.renew(owner, msgids, self._clock() + lease_seconds)

    def request_pull(self, open_kfid: str, token: str) -> None:
        with self._lock:
            self._pull_requests.put(open_kfid, token, self._clock() + PULL_REQUEST_TTL_SECONDS)

    def take_pull_request(self, open_kfid: str) -> str | None:
        with self._lock:
            return self._pull_requests.take(open_kfid, self._clock())

    def finish(self, msgid: str) -> None:
        with self._cond:
            self._claims.drop(msgid)
            kfid = self._where.pop(msgid, None)
            if kfid is not None:
                self._accounts[kfid].pending.pop(msgid, None)
                self._main_stale = True
            expires_at = self._clock() + self._ttl
            self._done.pop(msgid, None)  # re-inserted last: insertion order stays expiry order
            self._done[msgid] = expires_at
            self._unjournaled.append((msgid, expires_at))
            closed = self._closed
            self._cond.notify()
        if closed:  # no flusher any more: write now
            self.flush()
            self.journal.close()

    def get_flag(self, key: str) -> str | None:
        with self._lock:
            rec = self._flags.get(key)
            if rec is None:
                return None
            value, expires_at = rec
            return value if expires_at is None or expires_at > self._clock() else None

    def set_flag(self, key: str, value: str | None, ttl_seconds: float | None) -> None:
        with self._write_lock:
            with self._lock:
                previous = self._flags.get(key)
                if value is None:
                    self._flags.pop(key, None)
                else:
                    expires_at = None if ttl_seconds is None else self._clock() + ttl_seconds
                    self._flags[key] = (value, expires_at)
                queued = self._take_unjournaled_locked()
                data = self._serialize_locked()

            def undo(journaled: bool) -> None:
                if previous is None:
                    self._flags.pop(key, None)
                else:
                    self._flags[key] = previous

            self._persist(queued, [], data, undo)

    def try_lock(self, open_kfid: str, owner: str, ttl_seconds: float) -> bool:
        with self._lock:
            now = self._clock()
            rec = self._locks.get(open_kfid)
            if rec is not None and rec[0] != owner and rec[1] > now:
                return False
            self._locks[open_kfid] = (owner, now + ttl_seconds)
            return True

    def unlock(self, open_kfid: str, owner: str) -> None:
        with self._lock:
            rec = self._locks.get(open_kfid)
            if rec is not None and rec[0] == owner:
                del self._locks[open_kfid]

    def flush(self) -> None:
        with self._write_lock:
            with self._lock:
                queued = self._take_unjournaled_locked()
            self._persist(queued, [], None, None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._wake.set()
        if self._flusher is not threading.current_thread():
            self._flusher.join(timeout=10.0)
        self.flush()
        with self._write_lock:
            with self._lock:
                data = self._serialize_locked() if self._main_stale else None
            self._persist([], [], data, None)  # leaves a main file without finished items
            self.journal.close()

    # --- maintenance ------------------------------------------------------------------------------------

    def compact(self) -> None:
        """Drop expired done ids, bring the main file up to date, rewrite the journal with the live ids.

        The main file goes first: once an expired id leaves the journal, no main file may still list it.
        """
        with self._write_lock:
            with self._lock:
                self._prune_locked(self._clock())
                queued = self._take_unjournaled_locked()
                data = self._serialize_locked() if self._main_stale else None
            self._persist(queued, [], data, None)
            with self._lock:
                live = list(self._done.items())
            self.journal.rewrite(live)
        logger.debug("compacted %s to %d live id(s)", JOURNAL_NAME, len(live))

    def _maintain(self) -> None:
        with self._lock:
            now = self._clock()
            if now >= self._next_prune:
                self._prune_locked(now)
                self._next_prune = now + min(_PRUNE_INTERVAL, self._ttl / 4)
            live = len(self._done)
        dead = self.journal.lines - live
        if dead > max(live, _COMPACT_SLACK) or (
            self.journal.size > self._journal_max_bytes and dead > _COMPACT_SLACK
        ):
            self.compact()

    # --- state changes (call with self._lock held) ---------------------------------------------------

    def _is_done_locked(self, msgid: str) -> bool:
        expires_at = self._done.get(msgid)
        return expires_at is not None and expires_at > self._clock()

    def _add_pending_locked(
        self, open_kfid: str, acc: Account, items: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        accepted: list[dict[str, Any]] = []
        for item in items:
            msgid = item["msgid"]
            if msgid in self._where or self._is_done_locked(msgid):
                continue
            acc.pending[msgid] = dict(item)
            self._where[msgid] = open_kfid
            accepted.append(item)
        return accepted

    def _mark_done_locked(self, msgids: Sequence[str]) -> list[Entry]:
        expires_at = self._clock() + self._ttl
        added: list[Entry] = []
        for msgid in msgids:
            if msgid in self._where or self._is_done_locked(msgid):
                continue
            self._done.pop(msgid, None)
            self._done[msgid] = expires_at
            added.append((msgid, expires_at))
        return added

    def _take_unjournaled_locked(self) -> list[Entry]:
        queued, self._unjournaled = self._unjournaled, []
        return queued

    def _prune_locked(self, now: float) -> None:
        expired: list[str] = []
        for msgid, expires_at in self._done.items():  # same TTL for all: the oldest come first
            if expires_at > now:
                break
            expired.append(msgid)
        if len(expired) * 4 > len(self._done):
            self._done = {k: v for k, v in self._done.items() if v > now}  # also shrinks the table
        else:
            for msgid in expired:
                del self._done[msgid]
        for key in [k for k, (_, exp) in self._flags.items() if exp is not None and exp <= now]:
            del self._flags[key]
        for kfid in [k for k, (_, exp) in self._locks.items() if exp <= now]:
            del self._locks[kfid]
        self._pull_requests.prune(now)

    def _serialize_locked(self) -> bytes:
        self._main_stale = False
        return serialize(self._accounts, self._flags, self._clock())

    # --- writing (call with self._write_lock held) ------------------------------------------------------

    def _persist(
        self,
        queued: list[Entry],
        newly_done: list[Entry],
        data: bytes | None,
        undo: Callable[[bool], None] | None,
    ) -> None:
        """Append ``queued`` finishes and ``newly_done`` to the journal, then write ``data`` as the main file.

        On failure, ``undo(journaled)`` reverts the caller's change and the finishes are queued again.
        """
        journaled = False
        try:
            self.journal.append(queued + newly_done)
            journaled = True
            if data is not None:
                files.write_atomic(self.path, data)
                self.write_count += 1
        except BaseException:
            with self._lock:
                if undo is not None:
                    undo(journaled)
                if not journaled:
                    self._unjournaled[:0] = queued
                if data is not None:
                    self._main_stale = True
            raise

    def _flush_loop(self) -> None:
        while True:
            with self._cond:
                while not self._unjournaled and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return  # close() writes what is left
            self._wake.wait(self._commit_delay)  # gather more finishes into this append
            try:
                self.flush()
                self._maintain()
            except OSError as exc:
                logger.error("cannot write the state in %s: %s; retrying", self.directory, exc)
                self._wake.wait(_RETRY_AFTER_WRITE_ERROR)

    # --- loading ------------------------------------------------------------------------------------------

    def _open(self) -> None:
        """Load both files, then make them consistent: journal appends, main file, journal compaction."""
        state = read_main_file(self.path)
        self._accounts, self._flags = state.accounts, state.flags
        self._where = {msgid: kfid for kfid, acc in self._accounts.items() for msgid in acc.pending}
        now = self._clock()
        done: dict[str, float] = {}
        for msgid, expires_at in self.journal.load():
            kfid = self._where.pop(msgid, None)
            if kfid is not None:  # finished after the main file was written
                self._accounts[kfid].pending.pop(msgid, None)
                self._main_stale = True
            if expires_at > now:
                done[msgid] = max(expires_at, done.get(msgid, 0.0))
        carried = [(m, exp) for m, exp in state.legacy_done.items() if exp > now and m not in done]
        done.update(carried)
        self._done = dict(sorted(done.items(), key=lambda kv: kv[1]))
        data = self._serialize_locked() if (state.outdated or self._main_stale) else None
        self._persist([], carried, data, None)  # version 1 done ids reach the journal before they leave
        if self.journal.lines > len(self._done):
            self.journal.rewrite(self._done.items())
