"""Loading the JSON store: the main file's state replayed with its journal, in every format written.

On load, pending = pending in the main file minus what the journal finished. Done ids of earlier
versions carry no account (a journal line ``["<msgid>",<expires_at>]``, or a version 1 main file's
``done``): each is remembered for every account of the main file (an account with done ids always has
its entry there, written by the ``accept_page`` that first saw it), so no message is answered twice
after an upgrade; at worst, for three days, a msgid another account also uses is taken as done there
(WeCom's msgids are unique, so this does not happen in practice).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from . import done_ids
from .done_ids import DoneIds, digest
from .journal import Done, LegacyDone, Record, ValueSet
from .main_file import Account, MainState

Value = tuple[str, float | None]  # (value, expires_at)


@dataclass
class Loaded:
    accounts: dict[str, Account]
    done: DoneIds
    values: dict[str, Value]
    main_stale: bool = False  # the main file lists items the journal finished
    carried: list[Record] = field(default_factory=list)  # from the main file, for the journal
    legacy: bool = False  # the journal has lines of an earlier format: rewrite it


def replay(state: MainState, records: Iterable[Record], ttl: float, now: float) -> Loaded:
    """The store's state from the main file's ``state`` and the journal's ``records``."""
    pending = {
        digest(kfid, msgid): (kfid, msgid) for kfid, acc in state.accounts.items() for msgid in acc.pending
    }
    loaded = Loaded(state.accounts, DoneIds(ttl), dict(state.legacy_values))
    loaded.carried = _carried(state, now)
    carried = ((rec.digest, rec.expires_at) for rec in loaded.carried if isinstance(rec, Done))
    # Streamed into the compact set: the journal's records are never all in memory at once.
    loaded.done = done_ids.load(itertools.chain(_journal_done(records, loaded, pending), carried), ttl, now)
    return loaded


def _journal_done(
    records: Iterable[Record], loaded: Loaded, pending: dict[int, tuple[str, str]]
) -> Iterator[tuple[int, float]]:
    """The journal's done ids, as ``(digest, expires_at)``; on the way, its values go into ``loaded``
    and the pending items it finished leave their accounts."""
    accounts = loaded.accounts
    for rec in records:
        if isinstance(rec, ValueSet):
            if rec.value is None:
                loaded.values.pop(rec.key, None)
            else:
                loaded.values[rec.key] = (rec.value, rec.expires_at)
            continue
        if isinstance(rec, LegacyDone):
            loaded.legacy = True
            found = [digest(kfid, rec.msgid) for kfid in accounts]
        else:
            found = [rec.digest]
        for key in found:
            where = pending.pop(key, None)
            if where is not None:  # finished after the main file was written
                accounts[where[0]].pending.pop(where[1], None)
                loaded.main_stale = True
            yield key, rec.expires_at


def _carried(state: MainState, now: float) -> list[Record]:
    """What a version 1 or 2 main file kept itself (done ids, values): the journal takes it over."""
    if not state.outdated:
        return []
    carried: list[Record] = [
        Done(digest(kfid, msgid), exp)
        for msgid, exp in state.legacy_done.items()
        if exp > now
        for kfid in state.accounts
    ]
    carried += [ValueSet(k, v, e) for k, (v, e) in state.legacy_values.items() if e is None or e > now]
    return carried
