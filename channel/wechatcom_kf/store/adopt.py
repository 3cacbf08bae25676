"""Bring another deployment's cursor file in before the first start, so history is not replayed.

Upstream's ``wechat_kf`` channel keeps ``{open_kfid: cursor}`` in ``~/.wechat_kf_cursors.json`` (its
``wechat_kf_cursor_path``). A deployment that switches to this channel under the same name keeps its
place in each account's message stream: the file is copied into the state directory once, where the
JSON store migrates the upstream format on load.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .. import files
from .main_file import FILE_NAME

logger = logging.getLogger(__name__)

MAX_CURSOR_FILE_BYTES = 1024 * 1024


def adopt_cursor_file(source: Path, state_dir: Path) -> int:
    """Copy ``source`` into ``state_dir`` when the state has no cursor file yet; the cursors adopted."""
    target = state_dir / FILE_NAME
    if target.exists() or not source.is_file():
        return 0
    try:
        raw = source.read_bytes()[: MAX_CURSOR_FILE_BYTES + 1]
        doc = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        logger.warning("upstream cursor file %s not adopted (%s)", source, type(exc).__name__)
        return 0
    cursors = (
        {k: v for k, v in doc.items() if isinstance(k, str) and isinstance(v, str)}
        if isinstance(doc, dict)
        else {}
    )
    if not cursors or len(raw) > MAX_CURSOR_FILE_BYTES:
        logger.warning("upstream cursor file %s not adopted (not a {open_kfid: cursor} file)", source)
        return 0
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    files.write_atomic(target, json.dumps(cursors, ensure_ascii=False).encode("utf-8"))
    logger.info(
        "adopted %d cursor(s) from %s: history before them is not answered again", len(cursors), source
    )
    return len(cursors)
