"""Download received media and store it safely.

Files are named by us (a hash of the msgid plus an extension chosen from a whitelist by magic bytes
and Content-Type); the customer's filename never touches the path and is kept only as a sanitized
display name. Files are 0600, written atomically, under a 0700 directory; ``prune_media`` bounds it.
Limits of received media: https://developer.work.weixin.qq.com/document/path/94670
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .. import files

logger = logging.getLogger(__name__)

MB = 1024 * 1024
# WeCom's documented size limits of media a customer can send; bigger items arrive as a text notice.
MAX_IMAGE_PIXELS = 50_000_000  # a 2 MB image over this is a decompression bomb, not a photo
MEDIA_LIMITS: dict[str, int] = {"image": 2 * MB, "voice": 2 * MB, "video": 10 * MB, "file": 20 * MB}

IMAGE_EXTS = frozenset({".jpg", ".png", ".gif", ".webp", ".bmp"})
_KIND_EXTS: dict[str, frozenset[str]] = {
    "image": IMAGE_EXTS,
    "voice": frozenset({".amr", ".silk", ".mp3", ".wav"}),
    "video": frozenset({".mp4", ".mov"}),
    # Files may be anything; unknown content is kept as .bin rather than trusting a name.
    "file": frozenset(
        {".pdf", ".zip", ".txt", ".csv", ".json", ".md", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx"}
        | IMAGE_EXTS
        | {".amr", ".mp3", ".wav", ".mp4", ".mov", ".bin"}
    ),
}
_CONTENT_TYPE_EXTS: dict[str, str] = {
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/bmp": ".bmp",
    "audio/amr": ".amr",
    "audio/silk": ".silk",
    "audio/mpeg": ".mp3",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "application/pdf": ".pdf",
    "application/zip": ".zip",
    "text/plain": ".txt",
    "text/csv": ".csv",
    "text/markdown": ".md",
    "application/json": ".json",
    "application/msword": ".doc",
    "application/vnd.ms-excel": ".xls",
    "application/vnd.ms-powerpoint": ".ppt",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
}
_OOXML_EXTS = frozenset({".docx", ".xlsx", ".pptx"})
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"GIF87a", ".gif"),
    (b"GIF89a", ".gif"),
    (b"BM", ".bmp"),
    (b"#!AMR\n", ".amr"),
    (b"#!SILK", ".silk"),
    (b"\x02#!SILK", ".silk"),
    (b"%PDF-", ".pdf"),
    (b"PK\x03\x04", ".zip"),
    (b"ID3", ".mp3"),
)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class MediaFetcher(Protocol):
    """What the inbound side needs from the API client (``KfApi`` satisfies it)."""

    def download_media(self, media_id: str, max_bytes: int) -> Any: ...


class MediaSaveError(Exception):
    """A download came back unusable (empty, over the limit, or not the announced kind)."""


@dataclass(frozen=True)
class SavedMedia:
    path: Path
    ext: str
    size: int
    content_type: str | None
    display_name: str


def sniff_extension(data: bytes, content_type: str | None) -> str | None:
    """An extension from our whitelist, by magic bytes first, then by Content-Type; None if unknown."""
    magic_ext = next((ext for magic, ext in _MAGIC if data.startswith(magic)), None)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        magic_ext = ".webp"
    elif data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        magic_ext = ".wav"
    elif data[4:8] == b"ftyp":
        magic_ext = ".mov" if data[8:10] == b"qt" else ".mp4"
    ctype_ext = _CONTENT_TYPE_EXTS.get((content_type or "").split(";")[0].strip().lower())
    if magic_ext == ".zip" and ctype_ext in _OOXML_EXTS:
        return ctype_ext  # docx/xlsx/pptx are zip files; only the header tells them apart
    if magic_ext is not None:
        return magic_ext
    if ctype_ext is not None and not (ctype_ext in IMAGE_EXTS or ctype_ext in (".amr", ".silk", ".mp4")):
        return ctype_ext  # text-like formats have no magic; binary ones must match theirs
    return None


def sanitize_display_name(name: Any, limit: int = 120) -> str:
    """The customer's filename made harmless for display: last path part, no control chars, capped."""
    if not isinstance(name, str):
        return ""
    base = re.split(r"[\\/]", name)[-1]
    base = _CONTROL_RE.sub("", base).strip().lstrip(".").strip()
    return base[:limit]


def _check_image(data: bytes) -> None:
    """A customer's image must decode completely within MAX_IMAGE_PIXELS before a model sees it."""
    from ..outbound.images import check_image
    from ..outbound.media import MediaProblem

    try:
        check_image(data, MAX_IMAGE_PIXELS)
    except MediaProblem as problem:
        raise MediaSaveError(f"unreadable image: {problem.reason}") from None


def media_filename(msgid: str, ext: str) -> str:
    """Our name for a message's media: never derived from anything but the msgid's hash."""
    return hashlib.sha256(msgid.encode("utf-8")).hexdigest()[:16] + ext


def ensure_media_dir(media_dir: Path) -> Path:
    """Create the media directory 0700 if missing and return its resolved path."""
    media_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return media_dir.resolve()


def write_private_file(directory: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to ``directory/name`` atomically, mode 0600; never outside ``directory``."""
    target = (directory / name).resolve()
    if target.parent != directory.resolve():
        raise MediaSaveError("refusing a media path outside the media directory")
    files.write_atomic(target, data)
    return target


def download_and_save(
    fetcher: MediaFetcher, media_id: str, kind: str, msgid: str, media_dir: Path
) -> SavedMedia:
    """Download one media item within its kind's size limit and store it under ``media_dir``.

    Raises whatever the fetcher raises (``KfMediaError`` and other ``KfError``s), ``MediaSaveError``
    for unusable content, ``OSError`` for local write problems.
    """
    limit = MEDIA_LIMITS.get(kind, MEDIA_LIMITS["file"])
    downloaded = fetcher.download_media(media_id, limit)
    data = getattr(downloaded, "data", b"")
    content_type = getattr(downloaded, "content_type", None)
    if not isinstance(data, bytes) or not data:
        raise MediaSaveError("empty media")
    if len(data) > limit:  # the client enforces this too; a cheap second check
        raise MediaSaveError(f"media of {len(data)} bytes is over the {kind} limit of {limit}")
    ext = sniff_extension(data, content_type)
    if ext is None or ext not in _KIND_EXTS.get(kind, _KIND_EXTS["file"]):
        if kind != "file":
            raise MediaSaveError(f"content is not a supported {kind} format")
        ext = ".bin"
    if kind == "image":
        _check_image(data)
    directory = ensure_media_dir(media_dir)
    path = write_private_file(directory, media_filename(msgid, ext), data)
    name = sanitize_display_name(getattr(downloaded, "filename", None))
    logger.debug("saved %s media for %s as %s (%d bytes)", kind, msgid, path.name, len(data))
    return SavedMedia(path=path, ext=ext, size=len(data), content_type=content_type, display_name=name)


def voice_as_wav(saved: SavedMedia, directory: Path) -> Path:
    """A customer's AMR voice as WAV next to it, for the host's speech-to-text (which refuses AMR and,
    inside CoW, would convert with pydub, which CoW does not install); the AMR when that fails."""
    if saved.ext != ".amr":
        return saved.path
    from ..outbound.audio import to_wav
    from ..outbound.media import MediaProblem

    try:
        data = to_wav(str(saved.path))
    except MediaProblem as problem:
        logger.warning("voice %s not converted to WAV (%s); the host gets the AMR", saved.path.name, problem)
        return saved.path
    return write_private_file(ensure_media_dir(directory), saved.path.stem + ".wav", data)


def prune_media(media_dir: Path, max_age_seconds: float, now: float | None = None) -> int:
    """Delete regular files in ``media_dir`` older than ``max_age_seconds``; returns how many."""
    if not media_dir.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - max_age_seconds
    removed = 0
    with os.scandir(media_dir) as entries:
        for entry in entries:
            try:
                is_file = entry.is_file(follow_symlinks=False)
                if is_file and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue  # removed concurrently
    if removed:
        logger.info("pruned %d old media files", removed)
    return removed
