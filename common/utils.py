"""Small helpers shared by the runtime: durable file writes and secret redaction."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile

_SECRET_PARAM = re.compile(r"(?i)\b(access_token|corpsecret|secret|key|token|password)=([^&\s'\"]+)")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._\-]+")


def atomic_write_text(path: str, text: str, mode: int = 0o600) -> None:
    """Write ``text`` so readers see the old or the new file, never a torn one (temp + fsync + replace)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp_path, mode)
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_path)
        raise
    # The rename itself is durable only once the directory entry is flushed.
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def redact_secrets(text: str) -> str:
    """Remove credentials that exception texts tend to carry (query parameters, bearer headers)."""
    return _BEARER.sub(r"\1 ***", _SECRET_PARAM.sub(r"\1=***", text))


def get_path_suffix(path: str) -> str:
    return os.path.splitext(path)[1].lstrip(".").lower()


def fsize(path: str) -> int:
    return os.path.getsize(path)
