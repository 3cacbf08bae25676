"""The JSON store's main file (cursors and pending items), read in every format it ever had.

Upstream CoW's ``{open_kfid: cursor}``; version 1 (done ids and flags inside); version 2 (flags
inside); version 3 (cursors and pending items only: done ids and values live in the journal).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import StoreError

logger = logging.getLogger(__name__)

FILE_NAME = "wechatcom_kf_cursors.json"
FORMAT_VERSION = 3


class Account:
    __slots__ = ("cursor", "pending")

    def __init__(self, cursor: str | None = None) -> None:
        self.cursor = cursor
        self.pending: dict[str, dict[str, Any]] = {}  # insertion order = accept order


@dataclass
class MainState:
    accounts: dict[str, Account] = field(default_factory=dict)
    legacy_values: dict[str, tuple[str, float | None]] = field(default_factory=dict)  # versions 1-2
    legacy_done: dict[str, float] = field(default_factory=dict)  # from a version 1 file
    outdated: bool = False  # not in the current format: rewrite it


def read_main_file(path: Path) -> MainState:
    """The state in ``path`` (empty when missing); StoreError says what to do when it is unusable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return MainState()
    except OSError as exc:
        raise StoreError(f"cannot read state file {path}: {exc}") from exc
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise StoreError(
            f"state file {path} is not valid JSON ({exc}); restore it from a backup or remove it "
            "(removing it makes the next start skip history)"
        ) from exc
    if isinstance(doc, dict) and "version" in doc:
        return _read_versioned(path, doc)
    if isinstance(doc, dict) and all(isinstance(v, str) or v is None for v in doc.values()):
        logger.info("migrating %d cursor(s) from the upstream format of %s", len(doc), path)
        accounts = {kfid: Account(cursor or None) for kfid, cursor in doc.items()}
        return MainState(accounts=accounts, outdated=True)
    raise StoreError(f"state file {path} has an unknown format; restore it or remove it")


def _read_versioned(path: Path, doc: dict[str, Any]) -> MainState:
    version = doc.get("version")
    if version not in (1, 2, FORMAT_VERSION):
        raise StoreError(
            f"state file {path} has format version {version!r}; this code reads versions 1 to "
            f"{FORMAT_VERSION}"
        )
    state = MainState(outdated=version != FORMAT_VERSION)
    try:
        for kfid, rec in doc.get("accounts", {}).items():
            acc = state.accounts[kfid] = Account(rec.get("cursor"))
            for item in rec.get("pending", []):
                acc.pending[item["msgid"]] = item
        for key, rec in doc.get("flags", {}).items():
            exp = rec.get("expires_at")
            state.legacy_values[key] = (str(rec["value"]), None if exp is None else float(exp))
        state.legacy_done = {str(msgid): float(exp) for msgid, exp in doc.get("done", {}).items()}
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"state file {path} is damaged ({exc!r}); restore it or remove it") from exc
    return state


def serialize(accounts: dict[str, Account]) -> bytes:
    """The current format."""
    doc = {
        "version": FORMAT_VERSION,
        "accounts": {
            kfid: {"cursor": acc.cursor, "pending": list(acc.pending.values())}
            for kfid, acc in accounts.items()
        },
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
