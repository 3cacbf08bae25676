"""The JSON store's finished msgids for the dedup window: exact, compact, per account.

A finished message is remembered as a 64-bit digest of ``(open_kfid, msgid)`` (BLAKE2b), in time
slots of ``ttl / SLOTS_PER_TTL``: the slot is the unit of expiry, so pruning drops whole slots and never
scans entries, and an id is kept at least ``ttl`` and at most one slot longer. The slot being filled
is a ``set`` (O(1) add and lookup); older slots, and a slot's set grown to ``FREEZE_AT``, are frozen
into sorted ``array('Q')`` runs: 8 bytes an id instead of about 200 for a ``str`` key and a ``float``
in a dict. A slot's runs are merged when the newer is at least half the size of the one before it, up
to ``MAX_RUN`` ids, so a slot of ``s`` ids has at most about ``s / MAX_RUN + log2(MAX_RUN / FREEZE_AT)``
runs and each id is merged a few times. A lookup asks each live slot (about 25): a set test or a C
bisect per run, a few microseconds in all.

Exact, not probabilistic: a digest collision is the only way to wrongly call a new message done.
msgids are chosen by WeCom, not by customers, so nobody can aim at one. With ``n`` ids in one
account's window, a new id collides with probability ``n / 2**64``: for a very busy account with 10
million ids in its 3 days that is 5e-13 per message, and the chance of any collision over all ten
million messages is about ``n**2 / 2**65`` = 3e-6 per window. Keying by account means one account's
ids never mark another's messages done.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
from array import array
from collections.abc import Iterable, Iterator

SLOTS_PER_TTL = 24  # 3 h slots for the 3-day window
FREEZE_AT = 1 << 16  # a set this large is frozen even while its slot is current
# A merge sorts Python ints (about 40 bytes each while it runs): runs stop growing at this size, so a
# merge never needs more than about 20 MB, however many ids a slot gets.
MAX_RUN = 1 << 18


def digest(open_kfid: str, msgid: str) -> int:
    """The 64-bit key of a finished msgid of ``open_kfid`` (NUL cannot occur in either)."""
    data = f"{open_kfid}\0{msgid}".encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _contains(frozen: array, key: int) -> bool:
    at = bisect.bisect_left(frozen, key)
    return at < len(frozen) and frozen[at] == key


class DoneIds:
    """Digests with an expiry, grouped in slots; the caller serializes access (the store's lock)."""

    def __init__(self, ttl: float) -> None:
        self._span = max(float(ttl) / SLOTS_PER_TTL, 1e-6)
        self._sets: dict[int, set[int]] = {}  # slot -> digests added since the slot was last frozen
        self._frozen: dict[int, list[array]] = {}  # slot -> sorted runs of digests, larger first
        self._expires: dict[int, float] = {}  # slot -> latest expiry of its ids
        self._count = 0  # ids held, a re-finished id counted again until its older slot expires

    def __len__(self) -> int:
        return self._count

    def contains(self, key: int, now: float) -> bool:
        for slot, expires_at in self._expires.items():
            if expires_at <= now:
                continue  # expired, not yet pruned
            recent = self._sets.get(slot)
            if recent is not None and key in recent:
                return True
            for run in self._frozen.get(slot, ()):
                if _contains(run, key):
                    return True
        return False

    def add(self, key: int, expires_at: float) -> None:
        slot = math.floor(expires_at / self._span)
        recent = self._sets.get(slot)
        if recent is None:
            recent = self._sets[slot] = set()
            self._freeze_older(slot)
        if key in recent:
            return
        recent.add(key)
        self._count += 1
        if expires_at > self._expires.get(slot, -math.inf):
            self._expires[slot] = expires_at
        if len(recent) >= FREEZE_AT:
            self._freeze(slot)

    def prune(self, now: float) -> int:
        """Drop the slots whose every id expired; the number of ids dropped."""
        dropped = 0
        for slot in [s for s, exp in self._expires.items() if exp <= now]:
            dropped += len(self._sets.pop(slot, ())) + sum(map(len, self._frozen.pop(slot, ())))
            del self._expires[slot]
        self._count -= dropped
        return dropped

    def freeze_all(self) -> None:
        """Freeze every slot (after loading: what was read is not added to any more, mostly)."""
        for slot in list(self._sets):
            self._freeze(slot)

    def records(self) -> Iterator[tuple[int, float]]:
        """(digest, expiry of its slot) of every id held: what compaction writes."""
        for slot, expires_at in self._expires.items():
            for run in self._frozen.get(slot, ()):
                yield from ((key, expires_at) for key in run)
            yield from ((key, expires_at) for key in self._sets.get(slot, ()))

    def snapshot(self) -> list[tuple[float, array]]:
        """(expiry, a copy of the slot's ids) for every slot: what compaction writes once the caller's
        lock is released. 8 bytes an id, copied at memory speed."""
        slots: list[tuple[float, array]] = []
        for slot, expires_at in self._expires.items():
            ids = array("Q")
            for run in self._frozen.get(slot, ()):
                ids.extend(run)
            ids.extend(self._sets.get(slot, ()))
            slots.append((expires_at, ids))
        return slots

    def _freeze_older(self, current: int) -> None:
        """A new slot opened: the sets of earlier slots take no more ids from live traffic."""
        for slot in [s for s in self._sets if s < current]:
            self._freeze(slot)

    def _freeze(self, slot: int) -> None:
        recent = self._sets.pop(slot, None)
        if not recent:
            return
        runs = self._frozen.setdefault(slot, [])
        runs.append(array("Q", sorted(recent)))
        while len(runs) >= 2 and len(runs[-2]) <= 2 * len(runs[-1]) and len(runs[-2]) < MAX_RUN:
            newer = runs.pop()
            # Two sorted runs: Timsort merges them in linear time.
            runs[-1] = array("Q", sorted(itertools.chain(runs[-1], newer)))


def load(entries: Iterable[tuple[int, float]], ttl: float, now: float) -> DoneIds:
    """A :class:`DoneIds` of the unexpired ``(digest, expires_at)`` entries, frozen."""
    done = DoneIds(ttl)
    for key, expires_at in entries:
        if expires_at > now:
            done.add(key, expires_at)
    done.freeze_all()
    return done
