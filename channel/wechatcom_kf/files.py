"""The channel's file writes: atomic replace (state, received media), appends, directory fsync.

Everything the channel writes is 0600 under a 0700 directory and named by the channel, never from
untrusted input (invariant 8).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

logger = logging.getLogger(__name__)

FILE_MODE = 0o600


def temp_glob(name: str) -> str:
    """The pattern of temp files that an interrupted :func:`write_atomic` of ``name`` leaves behind."""
    return f".{name}.*.tmp"


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a write may be short)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_atomic(path: Path, data: bytes | Iterable[bytes]) -> None:
    """Replace ``path`` with ``data``: temp file (0600) + fsync + ``os.replace`` + directory fsync.

    ``data`` may be chunks, written as they come (a large file need not be in memory at once). A crash
    at any point leaves either the old or the new content, never a mix.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, FILE_MODE)  # the temp file may be a leftover with other bits
            for chunk in [data] if isinstance(data, bytes) else data:
                write_all(fd, chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def open_for_append(path: Path) -> int:
    """An append descriptor on ``path``, created 0600 (and made 0600 if it was not)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    if hasattr(os, "fchmod"):
        try:
            os.fchmod(fd, FILE_MODE)
        except OSError:
            os.close(fd)
            raise
    return fd


def fsync_directory(directory: Path) -> None:
    """Make a rename or a file creation in ``directory`` durable; not possible on every platform."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def remove_stale_temp_files(directory: Path, name: str) -> None:
    """Delete temp files of writes to ``name`` that a crash interrupted; they are never valid state."""
    for leftover in directory.glob(temp_glob(name)):
        logger.info("removing leftover temp file %s of an interrupted write", leftover.name)
        leftover.unlink(missing_ok=True)
