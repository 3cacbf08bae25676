"""Append-only journal beside the JSON store's main file: finished msgids and key-value changes.

One JSON line per record, so no msgid or value can break the line format:
``["h", "<16 hex digits>", <expires_at>]`` marks a message done by the 64-bit digest of its account and
msgid (``done_ids.py``); ``["k","<key>",<value or null>,<expires_at or null>]`` sets (null: deletes) a
value. ``["<msgid>",<expires_at>]``, a done msgid without its account, is what earlier versions wrote;
it is still read (``LegacyDone``) and never written. The store appends a batch with one write and one
fsync. A line cut short by a crash is ignored on load and cut off before anything else is appended;
compaction replaces the file atomically with the live records only.
"""

from __future__ import annotations

import json
import logging
import os
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import files
from .base import StoreError

logger = logging.getLogger(__name__)

JOURNAL_NAME = "wechatcom_kf_done.log"
REWRITE_BATCH = 4096  # records encoded and written at a time by a compaction


@dataclass(frozen=True, slots=True)
class Done:
    digest: int  # done_ids.digest(open_kfid, msgid)
    expires_at: float


@dataclass(frozen=True, slots=True)
class LegacyDone:
    """A done msgid from an earlier version's journal: its account is not known."""

    msgid: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class ValueSet:
    key: str
    value: str | None  # None: deleted
    expires_at: float | None


Record = Done | LegacyDone | ValueSet


@dataclass(frozen=True)
class LiveRecords:
    """What a compaction keeps, copied at one moment: the done ids of each expiry slot as an
    ``array('Q')`` (8 bytes an id) and the values."""

    done: list[tuple[float, array]]  # (expires_at, digests)
    values: list[ValueSet]

    def chunks(self) -> Iterator[tuple[int, bytes]]:
        """(lines, their bytes), ``REWRITE_BATCH`` lines at a time: a window of a million done ids is
        never a million objects or one 45 MB string in memory."""
        for expires_at, digests in self.done:
            for start in range(0, len(digests), REWRITE_BATCH):
                batch = digests[start : start + REWRITE_BATCH]
                yield len(batch), _done_lines(batch, expires_at).encode("ascii")
        if self.values:
            yield len(self.values), encode(self.values)


def _done_lines(digests: Iterable[int], expires_at: float) -> str:
    # Formatted by hand, as json.dumps would: one per finished message, the hot record.
    exp = repr(round(expires_at, 3))
    return "".join(f'["h", "{key:016x}", {exp}]\n' for key in digests)


def encode(records: Iterable[Record]) -> bytes:
    """Journal lines for ``records``."""
    lines: list[str] = []
    for rec in records:
        if isinstance(rec, Done):
            lines.append(_done_lines((rec.digest,), rec.expires_at))
        elif isinstance(rec, LegacyDone):
            raise TypeError("LegacyDone records are read, never written")
        else:
            exp = None if rec.expires_at is None else round(rec.expires_at, 3)
            lines.append(json.dumps(["k", rec.key, rec.value, exp]) + "\n")
    return "".join(lines).encode("ascii")


def _number(value: Any) -> float | None:
    return None if isinstance(value, bool) or not isinstance(value, int | float) else float(value)


def _parse(raw: bytes) -> Record | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if len(value) == 3 and value[0] == "h" and isinstance(value[1], str) and len(value[1]) == 16:
        exp = _number(value[2])
        try:
            key = int(value[1], 16)
        except ValueError:
            return None
        return None if exp is None else Done(key, exp)
    if len(value) == 2 and isinstance(value[0], str):
        exp = _number(value[1])
        return None if exp is None else LegacyDone(value[0], exp)
    if len(value) == 4 and value[0] == "k" and isinstance(value[1], str):
        val, exp = value[2], value[3]
        if (val is not None and not isinstance(val, str)) or (exp is not None and _number(exp) is None):
            return None
        return ValueSet(value[1], val, None if exp is None else float(exp))
    return None


class DoneJournal:
    """The journal file; the store serializes every call (one writer at a time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines = 0  # lines in the file, dead ones included: what compaction can reclaim
        self.size = 0  # bytes in the file
        self.append_count = 0  # appends (one write + fsync each), for tests and benchmarks
        self.compact_count = 0  # atomic rewrites
        self._fd: int | None = None
        self._unclean = False  # a failed append may have left a partial line that could not be cut off

    def load(self) -> Iterator[Record]:
        """Every complete, well-formed record in file order, read as the caller iterates (a window of
        done ids is never held as a million records). Once the iterator is exhausted, a torn last line
        has been cut off the file and appends may follow."""
        good_size = bad = 0
        try:
            with open(self.path, "rb") as f:
                for raw in f:
                    if not raw.endswith(b"\n"):
                        logger.warning("ignoring the last line of %s: an interrupted write", self.path.name)
                        break
                    good_size += len(raw)
                    if not raw.strip():
                        continue
                    self.lines += 1
                    entry = _parse(raw)
                    if entry is None:
                        bad += 1
                    else:
                        yield entry
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot read journal {self.path}: {exc}") from exc
        if bad:
            logger.warning("ignoring %d damaged line(s) of %s", bad, self.path.name)
        fd = self._open()
        if os.fstat(fd).st_size != good_size:
            os.ftruncate(fd, good_size)  # appends must not continue a torn line
            os.fsync(fd)
        self.size = good_size

    def append(self, entries: list[Record]) -> None:
        """Durably add ``entries`` (one write + fsync); on failure the file is cut back if possible."""
        if not entries:
            return
        data = encode(entries)
        if self._unclean:
            data = b"\n" + data  # ends whatever partial line an earlier failure left
        fd = self._open()
        try:
            files.write_all(fd, data)
            os.fsync(fd)
        except BaseException:
            self._cut_back(fd)
            raise
        self._unclean = False
        self.size += len(data)
        self.lines += len(entries)
        self.append_count += 1

    def rewrite(self, live: LiveRecords) -> None:
        """Replace the file atomically with the ``live`` records only (compaction)."""
        written = [0, 0]  # lines, bytes

        def chunks() -> Iterator[bytes]:
            for lines, data in live.chunks():
                written[0] += lines
                written[1] += len(data)
                yield data

        files.write_atomic(self.path, chunks())
        self.close()  # the descriptor points at the replaced file
        self._unclean = False
        self.lines, self.size = written
        self.compact_count += 1

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _open(self) -> int:
        if self._fd is None:
            created = not self.path.exists()
            self._fd = files.open_for_append(self.path)
            if created:
                files.fsync_directory(self.path.parent)
        return self._fd

    def _cut_back(self, fd: int) -> None:
        try:
            os.ftruncate(fd, self.size)
        except OSError:
            self._unclean = True
