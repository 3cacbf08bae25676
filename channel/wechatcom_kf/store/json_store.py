"""State store in one JSON file: ``<directory>/wechatcom_kf_cursors.json`` (the upstream file name).

For a single instance. ``accept_page`` and ``set_flag`` are durable before they return (temp file +
fsync + ``os.replace``); ``finish`` is group-committed by one flusher thread within ``commit_delay``
seconds, and on ``flush()``/``close()``. Losing a finish mark in a crash only re-handles a message whose
sends WeCom then refuses as duplicates. Upstream's ``{open_kfid: cursor}`` file is migrated on load.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .base import DONE_TTL_SECONDS, StoreError

logger = logging.getLogger(__name__)

FILE_NAME = "wechatcom_kf_cursors.json"
FORMAT_VERSION = 1
_TMP_GLOB = f".{FILE_NAME}.*.tmp"
_RETRY_AFTER_WRITE_ERROR = 1.0


class _Account:
    __slots__ = ("cursor", "pending")

    def __init__(self, cursor: str | None = None) -> None:
        self.cursor = cursor
        self.pending: dict[str, dict[str, Any]] = {}  # insertion order = accept order


class JsonFileStore:
    """:class:`~.base.StateStore` backed by one JSON file; thread-safe within one process."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        done_ttl_seconds: float = DONE_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
        commit_delay: float = 0.05,
    ) -> None:
        self.directory = Path(directory)
        self.path = self.directory / FILE_NAME
        self.write_count = 0  # number of file rewrites, for tests and benchmarks
        self._ttl = float(done_ttl_seconds)
        self._clock = clock
        self._commit_delay = commit_delay
        self._lock = threading.Lock()  # guards the in-memory state
        self._cond = threading.Condition(self._lock)  # wakes the flusher
        self._write_lock = threading.Lock()  # orders snapshot + write pairs
        self._wake = threading.Event()  # cuts the flusher's gather delay short on close
        self._accounts: dict[str, _Account] = {}
        self._where: dict[str, str] = {}  # pending msgid -> open_kfid
        self._done: dict[str, float] = {}  # msgid -> expires_at; insertion order = expiry order
        self._flags: dict[str, tuple[str, float | None]] = {}
        self._locks: dict[str, tuple[str, float]] = {}  # open_kfid -> (owner, expires_at); not persisted
        self._dirty = False
        self._closed = False
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        self._remove_stale_temp_files()
        if self._load():
            self._commit(lambda: None)  # rewrite a migrated upstream file in our format at once
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
    ) -> list[dict[str, Any]]:
        for item in new_items:
            if not isinstance(item.get("msgid"), str):
                raise ValueError("every item needs a string msgid")
        with self._write_lock:
            with self._lock:
                acc = self._accounts.setdefault(open_kfid, _Account())
                old_cursor = acc.cursor
                accepted = self._add_pending_locked(open_kfid, acc, new_items)
                newly_done = self._mark_done_locked(skipped_ids)
                if next_cursor is not None:
                    acc.cursor = next_cursor
                data = self._serialize_locked()
            try:
                self._write_file(data)
            except BaseException:
                with self._lock:  # not durable, so not accepted: undo and let the caller retry
                    for item in accepted:
                        acc.pending.pop(item["msgid"], None)
                        self._where.pop(item["msgid"], None)
                    for msgid in newly_done:
                        self._done.pop(msgid, None)
                    acc.cursor = old_cursor
                    self._dirty = True
                raise
        return accepted

    def pending(self, open_kfid: str) -> list[dict[str, Any]]:
        with self._lock:
            acc = self._accounts.get(open_kfid)
            return list(acc.pending.values()) if acc else []

    def finish(self, msgid: str) -> None:
        with self._cond:
            kfid = self._where.pop(msgid, None)
            if kfid is not None:
                self._accounts[kfid].pending.pop(msgid, None)
            self._done.pop(msgid, None)
            self._done[msgid] = self._clock() + self._ttl
            self._dirty = True
            closed = self._closed
            self._cond.notify()
        if closed:  # no flusher any more: write now
            self.flush()

    def get_flag(self, key: str) -> str | None:
        with self._lock:
            rec = self._flags.get(key)
            if rec is None:
                return None
            value, expires_at = rec
            return value if expires_at is None or expires_at > self._clock() else None

    def set_flag(self, key: str, value: str | None, ttl_seconds: float | None) -> None:
        def mutate() -> None:
            if value is None:
                self._flags.pop(key, None)
            else:
                expires_at = None if ttl_seconds is None else self._clock() + ttl_seconds
                self._flags[key] = (value, expires_at)

        self._commit(mutate)

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
        self._commit(None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._wake.set()
        if self._flusher is not threading.current_thread():
            self._flusher.join(timeout=10.0)
        self.flush()

    # --- state changes (call with self._lock held) ---------------------------------------------------

    def _is_done_locked(self, msgid: str) -> bool:
        expires_at = self._done.get(msgid)
        return expires_at is not None and expires_at > self._clock()

    def _add_pending_locked(
        self, open_kfid: str, acc: _Account, items: list[dict[str, Any]]
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

    def _mark_done_locked(self, msgids: Sequence[str]) -> list[str]:
        expires_at = self._clock() + self._ttl
        added = []
        for msgid in msgids:
            if msgid in self._where or self._is_done_locked(msgid):
                continue
            self._done.pop(msgid, None)
            self._done[msgid] = expires_at
            added.append(msgid)
        return added

    def _prune_locked(self) -> None:
        now = self._clock()
        # Same TTL for every id, so the oldest insertions expire first.
        while self._done:
            msgid, expires_at = next(iter(self._done.items()))
            if expires_at > now:
                break
            del self._done[msgid]
        for key in [k for k, (_, exp) in self._flags.items() if exp is not None and exp <= now]:
            del self._flags[key]
        for kfid in [k for k, (_, exp) in self._locks.items() if exp <= now]:
            del self._locks[kfid]

    def _serialize_locked(self) -> bytes:
        self._prune_locked()
        self._dirty = False
        doc = {
            "version": FORMAT_VERSION,
            "accounts": {
                kfid: {"cursor": acc.cursor, "pending": list(acc.pending.values())}
                for kfid, acc in self._accounts.items()
            },
            "done": self._done,
            "flags": {k: {"value": v, "expires_at": exp} for k, (v, exp) in self._flags.items()},
        }
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def _commit(self, mutate: Callable[[], None] | None) -> None:
        """Apply ``mutate`` and make the whole state durable before returning.

        With None, only write when something changed since the last write (``flush``).
        """
        with self._write_lock:
            with self._lock:
                if mutate is not None:
                    mutate()
                elif not self._dirty:
                    return
                data = self._serialize_locked()
            try:
                self._write_file(data)
            except BaseException:
                with self._lock:
                    self._dirty = True  # the next flush writes it again
                raise

    # --- group commit -------------------------------------------------------------------------------

    def _flush_loop(self) -> None:
        while True:
            with self._cond:
                while not self._dirty and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return  # close() writes what is left
            self._wake.wait(self._commit_delay)  # gather more finishes into this write
            try:
                self.flush()
            except OSError as exc:
                logger.error("cannot write %s: %s; retrying", self.path, exc)
                self._wake.wait(_RETRY_AFTER_WRITE_ERROR)

    # --- file I/O -----------------------------------------------------------------------------------

    def _write_file(self, data: bytes) -> None:
        tmp = self.directory / f".{FILE_NAME}.{os.getpid()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                if hasattr(os, "fchmod"):
                    os.fchmod(fd, 0o600)  # the temp file may be a leftover with other bits
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._fsync_directory()
        self.write_count += 1

    def _fsync_directory(self) -> None:
        # Makes the rename itself durable; not possible on every platform.
        try:
            dfd = os.open(self.directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)

    def _remove_stale_temp_files(self) -> None:
        for leftover in self.directory.glob(_TMP_GLOB):
            logger.info("removing leftover temp file %s of an interrupted write", leftover.name)
            leftover.unlink(missing_ok=True)

    def _load(self) -> bool:
        """Read the file; True when it was in upstream's format and needs rewriting."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StoreError(f"cannot read state file {self.path}: {exc}") from exc
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise StoreError(
                f"state file {self.path} is not valid JSON ({exc}); restore it from a backup or remove it "
                "(removing it makes the next start skip history)"
            ) from exc
        if isinstance(doc, dict) and "version" in doc:
            self._load_v1(doc)
            return False
        if isinstance(doc, dict) and all(isinstance(v, str) or v is None for v in doc.values()):
            for kfid, cursor in doc.items():
                self._accounts[kfid] = _Account(cursor or None)
            logger.info("migrating %d cursor(s) from the upstream format of %s", len(doc), self.path)
            return True
        raise StoreError(f"state file {self.path} has an unknown format; restore it or remove it")

    def _load_v1(self, doc: dict[str, Any]) -> None:
        if doc.get("version") != FORMAT_VERSION:
            raise StoreError(
                f"state file {self.path} has format version {doc.get('version')!r}, "
                f"this code reads version {FORMAT_VERSION}"
            )
        try:
            for kfid, rec in doc.get("accounts", {}).items():
                acc = self._accounts[kfid] = _Account(rec.get("cursor"))
                for item in rec.get("pending", []):
                    acc.pending[item["msgid"]] = item
                    self._where[item["msgid"]] = kfid
            done = sorted(doc.get("done", {}).items(), key=lambda kv: kv[1])
            self._done = {msgid: float(exp) for msgid, exp in done}
            for key, rec in doc.get("flags", {}).items():
                exp = rec.get("expires_at")
                self._flags[key] = (str(rec["value"]), None if exp is None else float(exp))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"state file {self.path} is damaged ({exc!r}); restore it or remove it") from exc
