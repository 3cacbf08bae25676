"""The optional rotating log file (``log_file``), like CoW's ``run.log``. app.py attaches it."""

from __future__ import annotations

import io
import os
from logging.handlers import RotatingFileHandler
from pathlib import Path


class PrivateRotatingFileHandler(RotatingFileHandler):
    """A size-rotated log file created 0600: it names accounts and (shortened) customers."""

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


def _both(zh: str, en: str) -> str:
    return f"{zh} / {en}"


def open_log_file(path: Path, *, max_mb: int, backups: int) -> PrivateRotatingFileHandler:
    """The handler for ``path``; ValueError (one line, Chinese then English, naming the setting and
    the fix) when it cannot be opened."""
    if max_mb < 1:
        raise ValueError(
            _both(f"log_file_max_mb 至少为 1（现为 {max_mb}）", f"log_file_max_mb must be ≥ 1 ({max_mb})")
        )
    if backups < 0:
        raise ValueError(
            _both(f"log_file_backups 不能为负（现为 {backups}）", f"log_file_backups must be ≥ 0 ({backups})")
        )
    where = f"log_file {str(path)!r}"
    if path.is_dir():
        raise ValueError(
            _both(
                f"{where} 是目录：请写文件名，如 {path / 'run.log'}",
                f"{where} is a directory: name a file, e.g. {path / 'run.log'}",
            )
        )
    if not path.parent.is_dir():
        raise ValueError(
            _both(
                f"{where} 所在目录不存在：请先创建 {path.parent}",
                f"{where}: create the directory {path.parent} first",
            )
        )
    try:
        return PrivateRotatingFileHandler(
            path, maxBytes=max_mb * 1024 * 1024, backupCount=backups, encoding="utf-8"
        )
    except OSError as exc:
        raise ValueError(
            _both(
                f"{where} 无法写入（{exc.strerror}）：请修正权限或换一个路径",
                f"{where} cannot be written ({exc.strerror}): fix its permissions or choose another path",
            )
        ) from None
