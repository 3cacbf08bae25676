"""The JSON store's main file (cursors and pending items), read in every format it ever had.

Upstream CoW's ``{open_kfid: cursor}``; version 1 (done ids and flags inside); version 2 (flags
inside); version 3 (cursors and pending items only: done ids and values live in the journal).
A corrupt file is never replaced: the store moves it aside and refuses to open (``set_aside``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import files
from .base import StoreError

logger = logging.getLogger(__name__)

FILE_NAME = "wechatcom_kf_cursors.json"
FORMAT_VERSION = 3


class Account:
    __slots__ = ("cursor", "pending")

    def __init__(self, cursor: str | None = None) -> None:
        self.cursor = cursor
        # msgid -> the item as JSON text (``encode_item``), insertion order = accept order. Encoded once
        # when accepted: each main-file write joins the texts instead of encoding every pending item
        # again, and a text is a fraction of the memory of the dict it came from.
        self.pending: dict[str, str] = {}


def encode_item(item: dict[str, Any]) -> str:
    """A pending item as the main file holds it."""
    return json.dumps(item, ensure_ascii=False, separators=(",", ":"))


@dataclass
class MainState:
    accounts: dict[str, Account] = field(default_factory=dict)
    legacy_values: dict[str, tuple[str, float | None]] = field(default_factory=dict)  # versions 1-2
    legacy_done: dict[str, float] = field(default_factory=dict)  # from a version 1 file
    outdated: bool = False  # not in the current format: rewrite it


class CorruptStateFile(StoreError):
    """The main file is not JSON, or not in any format we ever wrote; ``reason`` says how."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"state file {path} is corrupt ({reason})")
        self.reason = reason


def read_main_file(path: Path) -> MainState:
    """The state in ``path`` (empty when missing); StoreError says what to do when it is unusable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return MainState()
    except OSError as exc:
        raise StoreError(
            f"无法读取状态文件 {path}（{exc.strerror}）：请让运行本程序的用户可读写它 / "
            f"cannot read state file {path} ({exc.strerror}): make it readable and writable for the user "
            "running the bot"
        ) from exc
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptStateFile(path, f"not valid JSON: {exc}") from exc
    if isinstance(doc, dict) and "version" in doc:
        return _read_versioned(path, doc)
    if isinstance(doc, dict) and all(isinstance(v, str) or v is None for v in doc.values()):
        logger.info("migrating %d cursor(s) from the upstream format of %s", len(doc), path)
        accounts = {kfid: Account(cursor or None) for kfid, cursor in doc.items()}
        return MainState(accounts=accounts, outdated=True)
    raise CorruptStateFile(path, "an unknown format")


def _read_versioned(path: Path, doc: dict[str, Any]) -> MainState:
    version = doc.get("version")
    if version not in (1, 2, FORMAT_VERSION):
        raise StoreError(  # perhaps written by a newer version: not corrupt, so left in place
            f"状态文件 {path} 的格式版本为 {version!r}，本程序只读 1 到 {FORMAT_VERSION}："
            "请运行写入它的新版本 / "
            f"state file {path} has format version {version!r}; this code reads versions 1 to "
            f"{FORMAT_VERSION}: run the newer version that wrote it"
        )
    state = MainState(outdated=version != FORMAT_VERSION)
    try:
        for kfid, rec in doc.get("accounts", {}).items():
            acc = state.accounts[kfid] = Account(rec.get("cursor"))
            for item in rec.get("pending", []):
                acc.pending[item["msgid"]] = encode_item(item)
        for key, rec in doc.get("flags", {}).items():
            exp = rec.get("expires_at")
            state.legacy_values[key] = (str(rec["value"]), None if exp is None else float(exp))
        state.legacy_done = {str(msgid): float(exp) for msgid, exp in doc.get("done", {}).items()}
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise CorruptStateFile(path, f"damaged: {exc!r}") from exc
    return state


def set_aside(path: Path, reason: str) -> StoreError:
    """Move the corrupt ``path`` to ``<name>.corrupt-<timestamp>``; the error that refuses to start.

    Refusing rather than starting fresh at once: the operator may have a backup to put back, and a
    fresh start skips the history before it (and what the file still held unanswered).
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    for n in range(2, 100):
        if not aside.exists():
            break
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    where = f"wechatcom_kf_cursor_dir: 状态文件 {path} 已损坏（{reason}）"
    try:
        os.replace(path, aside)
        files.fsync_directory(path.parent)
    except OSError as exc:
        return StoreError(
            f"{where}，且无法移走（{exc.strerror}）：请手动移走它再启动 / "
            f"wechatcom_kf_cursor_dir: state file {path} is corrupt ({reason}) and could not be moved "
            f"aside ({exc.strerror}): move it away and start again"
        )
    return StoreError(
        f"{where}，已移到 {aside}，本次不启动：有备份就放回 {path} 后再启动；没有就直接再次启动，从头开始"
        f"（跳过此前的历史，已回复的消息不会重复回复）/ wechatcom_kf_cursor_dir: state file {path} is "
        f"corrupt ({reason}); moved it to {aside} and did not start, so nothing is skipped unnoticed: "
        f"to continue from a backup, put the backup at {path} and start again; to start fresh, just "
        "start again (history before that start is skipped; messages already answered are not "
        "answered twice)"
    )


def serialize(accounts: dict[str, Account]) -> bytes:
    """The current format, as ``json.dumps(doc, ensure_ascii=False, separators=(",", ":"))`` of
    ``{"version": 3, "accounts": {kfid: {"cursor": ..., "pending": [item, ...]}}}`` would write it."""

    def text(value: str | None) -> str:
        return json.dumps(value, ensure_ascii=False)

    accounts_text = ",".join(
        f'{text(kfid)}:{{"cursor":{text(acc.cursor)},"pending":[{",".join(acc.pending.values())}]}}'
        for kfid, acc in accounts.items()
    )
    return f'{{"version":{FORMAT_VERSION},"accounts":{{{accounts_text}}}}}'.encode()
