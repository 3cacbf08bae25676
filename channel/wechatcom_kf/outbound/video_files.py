"""Videos (MP4 ≤10 MB, sent as they are) and files (≤20 MB) for ``media/upload``."""

from __future__ import annotations

import mimetypes
import os

from .media import MB, MediaProblem, MediaUpload

VIDEO_MAX_BYTES = 10 * MB
FILE_MAX_BYTES = 20 * MB

# ISO base media files start with a box whose type is "ftyp"; MP4 is what WeCom accepts. Transcoding
# other containers would cost seconds of CPU per reply, so they are refused with a notice instead.
_FTYP = b"ftyp"


def is_mp4(data: bytes) -> bool:
    return len(data) >= 12 and data[4:8] == _FTYP


def prepare_video(
    data: bytes, *, filename: str = "video.mp4", max_bytes: int = VIDEO_MAX_BYTES
) -> MediaUpload:
    """A video upload; raises MediaProblem when not MP4 or over ``max_bytes``."""
    if len(data) > max_bytes:
        raise MediaProblem(f"video of {len(data)} bytes > {max_bytes}", too_big=True)
    if not is_mp4(data):
        raise MediaProblem("video is not an MP4 (no ftyp box)")
    stem = os.path.splitext(os.path.basename(filename))[0] or "video"
    return MediaUpload("video", f"{stem}.mp4", data, "video/mp4")


def prepare_file(path: str, data: bytes, *, max_bytes: int = FILE_MAX_BYTES) -> MediaUpload:
    """A file upload named after the path's basename."""
    if len(data) > max_bytes:
        raise MediaProblem(f"file of {len(data)} bytes > {max_bytes}", too_big=True)
    if not data:
        raise MediaProblem("empty file")
    filename = os.path.basename(path.rstrip("/\\")) or "file"
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return MediaUpload("file", filename, data, content_type)
