"""media/upload and media/get (fact sheet §8) and the media store they share with customer messages.

Errcodes beyond the fact sheet follow WeCom's global table (UNCONFIRMED for KF): 40004 invalid media
type, 40005 invalid file type (magic), 40006 invalid file size, 40009/40010/40011 image/voice/video
size, 40058 missing ``media`` field.
"""

from __future__ import annotations

import mimetypes
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sandbox.emulator import amr, multipart
from sandbox.emulator.models import MEDIA_TTL, ApiError, ApiRequest, RawResponse, UploadedMedia

if TYPE_CHECKING:
    from sandbox.emulator.emulator import WeComEmulator

MB = 1024 * 1024
MAX_BYTES = {"image": 10 * MB, "voice": 2 * MB, "video": 10 * MB, "file": 20 * MB}
SIZE_ERRCODE = {"image": 40009, "voice": 40010, "video": 40011, "file": 40006}
MAX_VOICE_SECONDS = 60.0
DEFAULT_NAMES = {"image": "image.jpg", "voice": "voice.amr", "video": "video.mp4", "file": "file.bin"}
# Default of ``emu.media_bytes_cap``: a long benchmark uploading voice or images stays flat in memory.
MEDIA_BYTES_CAP = 256 * MB


def sniff_content_type(kind: str, data: bytes, filename: str) -> str:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if amr.is_amr(data):
        return "audio/amr"
    if data[4:8] == b"ftyp":
        return "video/mp4"
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or "application/octet-stream"


def check_upload(kind: str, data: bytes) -> None:
    """The documented per-type limits; raises ApiError."""
    if len(data) <= 5:
        raise ApiError(40006, "invalid file size: must be more than 5 bytes")
    if len(data) > MAX_BYTES[kind]:
        raise ApiError(SIZE_ERRCODE[kind], f"{kind} larger than {MAX_BYTES[kind]} bytes")
    if kind == "image" and not data.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")):
        raise ApiError(40005, "invalid file type: image must be JPG or PNG")
    if kind == "video" and data[4:8] != b"ftyp":
        raise ApiError(40005, "invalid file type: video must be MP4")
    if kind == "voice":
        try:
            seconds = amr.amr_duration(data)
        except amr.AmrError as exc:
            raise ApiError(40005, f"invalid file type: voice must be AMR ({exc})") from None
        if seconds > MAX_VOICE_SECONDS:
            raise ApiError(40010, "voice longer than 60 s")


def store(emu: WeComEmulator, kind: str, data: bytes, filename: str, content_type: str | None = None) -> str:
    """Keep ``data`` under a fresh media_id (valid 3 days)."""
    media_id = "3" + secrets.token_urlsafe(48).replace("-", "a").replace("_", "b")
    name = filename or DEFAULT_NAMES.get(kind, "file.bin")
    ctype = content_type or sniff_content_type(kind, data, name)
    with emu.state.changed:
        emu.state.media[media_id] = UploadedMedia(media_id, kind, name, ctype, data, emu.state.now())
        emu.state.media_bytes += len(data)
        _prune(emu)
    return media_id


def _prune(emu: WeComEmulator) -> None:
    """Forget expired media (unusable anyway), then the oldest while over ``emu.media_bytes_cap``;
    the newest always stays. Call with the state lock held."""
    state, cap = emu.state, emu.media_bytes_cap
    now = state.now()
    while len(state.media) > 1:
        oldest = next(iter(state.media.values()))  # insertion order = upload order
        if now - oldest.created_at <= MEDIA_TTL and (cap is None or state.media_bytes <= cap):
            return
        del state.media[oldest.media_id]
        state.media_bytes -= len(oldest.data)


def lookup(emu: WeComEmulator, media_id: str) -> UploadedMedia | None:
    """The stored media unless unknown or older than 3 days."""
    with emu.state.lock:
        item = emu.state.media.get(media_id)
        if item is None or emu.state.now() - item.created_at > MEDIA_TTL:
            return None
        return item


def upload(emu: WeComEmulator, req: ApiRequest) -> dict[str, Any]:
    """https://developer.work.weixin.qq.com/document/path/90253"""
    kind = req.query.get("type", "")
    if kind not in MAX_BYTES:
        raise ApiError(40004, "invalid media type")
    part = multipart.field(multipart.parse(req.headers.get("content-type", ""), req.body), "media")
    if part is None:
        raise ApiError(40058, "missing media field")
    check_upload(kind, part.data)
    content_type = part.content_type if part.content_type and kind == "file" else None
    media_id = store(emu, kind, part.data, part.filename or "", content_type)
    created = int(emu.state.media[media_id].created_at)
    return {"errcode": 0, "errmsg": "ok", "type": kind, "media_id": media_id, "created_at": str(created)}


def content_disposition(filename: str) -> str:
    ascii_name = filename.encode("ascii", "replace").decode("ascii").replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


def get(emu: WeComEmulator, req: ApiRequest) -> RawResponse:
    """https://developer.work.weixin.qq.com/document/path/90254"""
    item = lookup(emu, req.query.get("media_id", ""))
    if item is None:
        raise ApiError(40007, "invalid media_id")
    return RawResponse(
        item.data, item.content_type, {"Content-Disposition": content_disposition(item.filename)}
    )
