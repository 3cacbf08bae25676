"""State store in files, for one instance: ``<directory>/wechatcom_kf_cursors.json`` (the upstream file
name) and a journal beside it, ``wechatcom_kf_done.log``.

The main file holds each account's cursor and pending items; only ``accept_page`` rewrites it
(atomically: temp file + fsync + ``os.replace``, 0600), and compaction. Everything else that must be
durable is one journal line: a finished msgid (kept ``done_ttl_seconds`` for dedup, per account, as a
64-bit digest: ``done_ids.py``) or a key-value change (takeover flags, reply plans), so ``finish``
and ``set_value`` never rewrite pending items. They queue their line and return once it is appended
and fsynced: group commit without a thread of its own — the first caller to find no write in progress
writes everything queued so far (one write + fsync), the others wait for it or lead the next batch.
Expired records are pruned and the journal compacted by ``maintain()``, which the channel's
maintenance thread calls.

On load (``json_load.py``), pending = pending in the main file minus what the journal finished; every
main-file write first appends the journal lines queued before it, so no crash can drop a finished item
from both. Upstream's ``{open_kfid: cursor}`` file, versions 1 and 2 and journals of earlier versions
are migrated on load. Claims, locks and pull requests live in memory (``memory.py``): one process
uses the files, and a restart leaves every pending item claimable, as a crash needs.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .. import files
from . import done_ids
from .base import CLAIM_LEASE_SECONDS, DONE_TTL_SECONDS, PULL_REQUEST_TTL_SECONDS, RawItem, StoreUnavailable
from .done_ids import DoneIds, digest
from .journal import JOURNAL_NAME, Done, DoneJournal, LiveRecords, Record, ValueSet
from .json_load import Value, replay
from .main_file import FILE_NAME, Account, CorruptStateFile, encode_item, read_main_file, serialize, set_aside
from .memory import Claims, Locks, PullRequests

logger = logging.getLogger(__name__)

_COMPACT_SLACK = 1024  # dead journal lines tolerated whatever the live count
_JOURNAL_MAX_BYTES = 64 * 1024 * 1024


class JsonFileStore:
    """:class:`~.base.StateStore` in a small JSON file and a journal; thread-safe."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        done_ttl_seconds: float = DONE_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
        journal_max_bytes: int = _JOURNAL_MAX_BYTES,
    ) -> None:
        self.directory = Path(directory)
        self.path = self.directory / FILE_NAME
        self.write_count = 0  # rewrites of the main file, for tests and benchmarks
        self._ttl = float(done_ttl_seconds)
        self._clock = clock
        self._journal_max_bytes = journal_max_bytes
        self._lock = threading.Lock()  # guards the in-memory state
        self._cond = threading.Condition(self._lock)  # callers waiting for their journal line
        self._write_lock = threading.Lock()  # one file writer at a time
        self._accounts: dict[str, Account] = {}
        self._done = DoneIds(self._ttl)  # digests of (open_kfid, msgid) finished
        self._values: dict[str, Value] = {}
        self._queue: list[Record] = []  # journal lines not yet appended
        self._queued = 0  # number of the last line queued
        self._durable = 0  # lines up to this number are in the journal
        self._leading = False  # a caller is writing a batch of queued lines
        self._main_stale = False  # the main file still lists items finished since
        self._claims: dict[str, Claims] = {}  # per account, as msgids are
        self._locks = Locks()
        self._pull_requests = PullRequests()
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        files.remove_stale_temp_files(self.directory, FILE_NAME)
        files.remove_stale_temp_files(self.directory, JOURNAL_NAME)
        self.journal = DoneJournal(self.directory / JOURNAL_NAME)
        try:
            self._open()
        except BaseException:
            self.journal.close()
            raise

    # --- Inbox ------------------------------------------------------------------------------------

    def load_cursor(self, open_kfid: str) -> str | None:
        with self._lock:
            acc = self._accounts.get(open_kfid)
            return acc.cursor if acc else None

    def accept_page(
        self,
        open_kfid: str,
        next_cursor: str | None,
        new_items: Sequence[RawItem],
        skipped_ids: Sequence[str] = (),
        owner: str = "",
        lease_seconds: float = CLAIM_LEASE_SECONDS,
    ) -> list[RawItem]:
        for item in new_items:
            if not isinstance(item.get("msgid"), str):
                raise ValueError("every item needs a string msgid")
        with self._write_lock:
            with self._lock:
                acc = self._accounts.setdefault(open_kfid, Account())
                old_cursor = acc.cursor
                claims = self._claims_of(open_kfid)
                added, claimed, accepted = self._add_pending_locked(open_kfid, acc, new_items, owner)
                if owner:
                    claims.grant(claimed, owner, self._clock() + lease_seconds)
                newly_done = self._mark_done_locked(open_kfid, acc, skipped_ids)
                if next_cursor is not None:
                    acc.cursor = next_cursor
                queued, upto = self._take_queue_locked()
                data = serialize(self._accounts)
                self._main_stale = False

            def undo(journaled: bool) -> None:  # not durable, so not accepted: the caller retries
                for msgid in added:
                    acc.pending.pop(msgid, None)
                    claims.drop(msgid)
                if not journaled:  # skipped ids were not recorded: seeing them again skips them again
                    self._done = self._rebuilt_without(newly_done)
                acc.cursor = old_cursor

            self._write(queued, upto, newly_done, data, undo)
        return accepted

    def pending(self, open_kfid: str) -> list[RawItem]:
        with self._lock:
            acc = self._accounts.get(open_kfid)
            return [json.loads(text) for text in acc.pending.values()] if acc else []

    def known_accounts(self) -> list[str]:
        with self._lock:
            return sorted(k for k, acc in self._accounts.items() if acc.cursor is not None or acc.pending)

    def pending_accounts(self) -> list[str]:
        with self._lock:
            return sorted(kfid for kfid, acc in self._accounts.items() if acc.pending)

    def claim_pending(self, open_kfid: str, owner: str, lease_seconds: float) -> list[RawItem]:
        with self._lock:
            acc = self._accounts.get(open_kfid)
            if acc is None:
                return []
            now = self._clock()
            taken = self._claims_of(open_kfid).take(acc.pending, owner, now, now + lease_seconds)
            return [json.loads(acc.pending[msgid]) for msgid in taken]

    def renew_claims(self, open_kfid: str, owner: str, msgids: Sequence[str], lease_seconds: float) -> None:
        with self._lock:
            self._claims_of(open_kfid).renew(owner, msgids, self._clock() + lease_seconds)

    def finish(self, open_kfid: str, msgid: str) -> None:
        with self._cond:
            self._claims_of(open_kfid).drop(msgid)
            acc = self._accounts.get(open_kfid)
            if acc is not None and acc.pending.pop(msgid, None) is not None:
                self._main_stale = True
            record = Done(digest(open_kfid, msgid), self._clock() + self._ttl)
            self._done.add(record.digest, record.expires_at)
            number = self._queue_locked(record)
        self._wait_durable(number)

    # --- AccountLocks -------------------------------------------------------------------------------

    def try_lock(self, open_kfid: str, owner: str, ttl_seconds: float) -> bool:
        with self._lock:
            now = self._clock()
            return self._locks.take(open_kfid, owner, now, now + ttl_seconds)

    def unlock(self, open_kfid: str, owner: str) -> None:
        with self._lock:
            self._locks.release(open_kfid, owner)

    def request_pull(self, open_kfid: str, token: str) -> None:
        with self._lock:
            self._pull_requests.put(open_kfid, token, self._clock() + PULL_REQUEST_TTL_SECONDS)

    def take_pull_request(self, open_kfid: str) -> str | None:
        with self._lock:
            return self._pull_requests.take(open_kfid, self._clock())

    # --- KeyValues ----------------------------------------------------------------------------------

    def get_value(self, key: str) -> str | None:
        with self._lock:
            rec = self._values.get(key)
            if rec is None:
                return None
            value, expires_at = rec
            return value if expires_at is None or expires_at > self._clock() else None

    def set_value(self, key: str, value: str | None, ttl_seconds: float | None) -> None:
        with self._cond:
            if value is None:
                if self._values.pop(key, None) is None:
                    return  # nothing to delete: nothing to write
                expires_at = None
            else:
                expires_at = None if ttl_seconds is None else self._clock() + ttl_seconds
                self._values[key] = (value, expires_at)
            number = self._queue_locked(ValueSet(key, value, expires_at))
        self._wait_durable(number)

    # --- durability ---------------------------------------------------------------------------------

    def flush(self) -> None:
        with self._write_lock:
            with self._lock:
                queued, upto = self._take_queue_locked()
            self._write(queued, upto, [], None, None)

    def close(self) -> None:
        self.flush()
        with self._write_lock:
            with self._lock:
                data = serialize(self._accounts) if self._main_stale else None
                self._main_stale = False
            self._write([], 0, [], data, None)  # leaves a main file without finished items
            self.journal.close()

    def compact(self) -> None:
        """Drop expired records, bring the main file up to date, rewrite the journal with live records.

        The main file goes first: once an expired id leaves the journal, no main file may still list it.
        """
        with self._write_lock:
            with self._lock:
                self._prune_locked(self._clock())
                queued, upto = self._take_queue_locked()
                data = serialize(self._accounts) if self._main_stale else None
                self._main_stale = False
            self._write(queued, upto, [], data, None)
            with self._lock:
                live = self._live_snapshot_locked()
            try:
                self.journal.rewrite(live)
            except OSError as exc:  # the old journal is intact: nothing is lost, compaction waits
                raise StoreUnavailable(f"cannot compact the journal in {self.directory}: {exc}") from exc
        logger.debug("compacted %s to %d live record(s)", JOURNAL_NAME, self.journal.lines)

    def _queue_locked(self, record: Record) -> int:
        self._queue.append(record)
        self._queued += 1
        self._cond.notify_all()
        return self._queued

    def _take_queue_locked(self) -> tuple[list[Record], int]:
        queued, self._queue = self._queue, []
        return queued, self._queued

    def _wait_durable(self, number: int) -> None:
        """Return once journal line ``number`` is durable, writing the batch if no one else is."""
        while True:
            with self._cond:
                while self._leading and self._durable < number:
                    self._cond.wait()
                if self._durable >= number:
                    return
                self._leading = True
            try:
                self.flush()
            finally:
                with self._cond:
                    self._leading = False
                    self._cond.notify_all()

    def _write(
        self,
        queued: list[Record],
        upto: int,
        newly_done: Sequence[Record],
        data: bytes | None,
        undo: Callable[[bool], None] | None,
    ) -> None:
        """Append ``queued`` and ``newly_done`` to the journal, then write ``data`` as the main file.

        Call with the write lock held. On failure ``undo(journaled)`` reverts the caller's change, the
        queued lines go back to the queue, and StoreUnavailable is raised.
        """
        journaled = False
        try:
            self.journal.append([*queued, *newly_done])
            journaled = True
            if data is not None:
                files.write_atomic(self.path, data)
                self.write_count += 1
        except OSError as exc:
            with self._lock:
                if undo is not None:
                    undo(journaled)
                if not journaled:
                    self._queue[:0] = queued
                if data is not None:
                    self._main_stale = True
            raise StoreUnavailable(f"cannot write the state in {self.directory}: {exc}") from exc
        with self._cond:
            if upto > self._durable:
                self._durable = upto
                self._cond.notify_all()

    def maintain(self) -> None:
        """Drop expired records; compact the journal when mostly dead (periodic housekeeping)."""
        with self._lock:
            self._prune_locked(self._clock())
            live = len(self._done) + len(self._values)
        dead = self.journal.lines - live
        if dead > max(live, _COMPACT_SLACK) or (
            self.journal.size > self._journal_max_bytes and dead > _COMPACT_SLACK
        ):
            self.compact()

    # --- state changes (call with self._lock held) ---------------------------------------------------

    def _claims_of(self, open_kfid: str) -> Claims:
        claims = self._claims.get(open_kfid)
        if claims is None:
            claims = self._claims[open_kfid] = Claims()
        return claims

    def _is_done_locked(self, open_kfid: str, msgid: str) -> bool:
        return self._done.contains(digest(open_kfid, msgid), self._clock())

    def _rebuilt_without(self, records: Sequence[Done]) -> DoneIds:
        """The done ids minus ``records`` (a failed write's; rare, so a rebuild is fine)."""
        drop = {rec.digest for rec in records}
        live = ((key, exp) for key, exp in self._done.records() if key not in drop)
        return done_ids.load(live, self._ttl, self._clock())

    def _add_pending_locked(
        self, open_kfid: str, acc: Account, items: Sequence[RawItem], owner: str
    ) -> tuple[list[str], list[str], list[RawItem]]:
        """(msgids added now, msgids to claim for ``owner`` now, the items accepted): new ones, and
        ones the same owner accepted before — a repeated call gets the same items, under the new lease."""
        added: list[str] = []
        claim: list[str] = []
        accepted: list[RawItem] = []
        claims = self._claims_of(open_kfid)
        for item in items:
            msgid = item["msgid"]
            if msgid in claim:
                continue  # the same msgid twice in one page: accepted once
            if msgid in acc.pending:
                if owner and claims.holder(msgid) == owner:
                    claim.append(msgid)
                    accepted.append(item)
                continue
            if self._is_done_locked(open_kfid, msgid):
                continue
            acc.pending[msgid] = encode_item(item)  # the store's own copy; the caller keeps its item
            added.append(msgid)
            claim.append(msgid)
            accepted.append(item)
        return added, claim, accepted

    def _mark_done_locked(self, open_kfid: str, acc: Account, msgids: Sequence[str]) -> list[Done]:
        expires_at = self._clock() + self._ttl
        added: list[Done] = []
        for msgid in msgids:
            if msgid in acc.pending or self._is_done_locked(open_kfid, msgid):
                continue
            record = Done(digest(open_kfid, msgid), expires_at)
            self._done.add(record.digest, expires_at)
            added.append(record)
        return added

    def _live_snapshot_locked(self) -> LiveRecords:
        values = [ValueSet(key, value, exp) for key, (value, exp) in self._values.items()]
        return LiveRecords(self._done.snapshot(), values)

    def _prune_locked(self, now: float) -> None:
        self._done.prune(now)
        for key in [k for k, (_, exp) in self._values.items() if exp is not None and exp <= now]:
            del self._values[key]
        self._locks.prune(now)
        self._pull_requests.prune(now)

    # --- loading ------------------------------------------------------------------------------------

    def _open(self) -> None:
        """Load both files, then make them consistent: journal appends, main file, journal compaction.

        A corrupt main file is moved aside and the store refuses to open: never silently replaced."""
        try:
            state = read_main_file(self.path)
        except CorruptStateFile as exc:
            raise set_aside(self.path, exc.reason) from None
        loaded = replay(state, self.journal.load(), self._ttl, self._clock())
        self._accounts, self._done, self._values = loaded.accounts, loaded.done, loaded.values
        data = serialize(self._accounts) if (state.outdated or loaded.main_stale) else None
        # What older formats kept in the main file reaches the journal before the main file drops it.
        self._write([], 0, loaded.carried, data, None)
        if loaded.legacy or self.journal.lines > len(self._done) + len(self._values):
            self.journal.rewrite(self._live_snapshot_locked())
