"""The control API's actions: the page plays the customer and the receptionist."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

from sandbox.emulator import amr, audio, media, multipart
from sandbox.emulator.api_router import HttpAnswer

if TYPE_CHECKING:
    from sandbox.emulator.emulator import WeComEmulator

MAX_UPLOAD = 20 * 1024 * 1024
UPLOAD_KINDS = ("image", "voice", "video", "file")


class BadInput(ValueError):
    """Answered 400."""


def _body(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8") or "{}")
    except (UnicodeDecodeError, ValueError):
        raise BadInput("body must be JSON") from None
    if not isinstance(value, dict):
        raise BadInput("body must be a JSON object")
    return value


def _str(data: dict[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or (default is None and not value):
        raise BadInput(f"{key} is required")
    return value


def _pair(emu: WeComEmulator, data: dict[str, Any]) -> tuple[str, str]:
    kf, user = _str(data, "open_kfid"), _str(data, "external_userid")
    if kf not in emu.state.accounts or user not in emu.state.customers:
        raise BadInput("unknown open_kfid or external_userid")
    return kf, user


def add_account(emu: WeComEmulator, headers: dict[str, str], raw: bytes) -> dict[str, Any]:
    return {"open_kfid": emu.add_account(_str(_body(raw), "name", "客服") or "客服")}


def add_customer(emu: WeComEmulator, headers: dict[str, str], raw: bytes) -> dict[str, Any]:
    return {"external_userid": emu.add_customer(_str(_body(raw), "nickname", "客户") or "客户")}


def send(emu: WeComEmulator, headers: dict[str, str], raw: bytes) -> dict[str, Any]:
    data = _body(raw)
    kf, user = _pair(emu, data)
    return {"msgid": emu.customer_text(kf, user, _str(data, "text"))}


def click(emu: WeComEmulator, headers: dict[str, str], raw: bytes) -> dict[str, Any]:
    """The customer taps a click item of a menu the app sent: a text with ``menu_id`` reaches the app."""
    data = _body(raw)
    kf, user = _pair(emu, data)
    try:
        return {"msgid": emu.customer_click(kf, user, _str(data, "menu_id"), _str(data, "content"))}
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def enter(emu: WeComEmulator, headers: dict[str, str], raw: bytes) -> dict[str, Any]:
    data = _body(raw)
    kf, user = _pair(emu, data)
    code = emu.enter_session(kf, user, _str(data, "scene", ""), _str(data, "scene_param", ""))
    return {"welcome_code": code}


def takeover(emu: WeComEmulator, headers: dict[str, str], raw: bytes) -> dict[str, Any]:
    data = _body(raw)
    kf, user = _pair(emu, data)
    emu.take_over(kf, user, _str(data, "servicer_userid", "zhangsan") or "zhangsan")
    return {"state": emu.service_state(kf, user)}


def handback(emu: WeComEmulator, headers: dict[str, str], raw: bytes) -> dict[str, Any]:
    kf, user = _pair(emu, _body(raw))
    emu.hand_back(kf, user)
    return {"state": emu.service_state(kf, user)}


def servicer_send(emu: WeComEmulator, headers: dict[str, str], raw: bytes) -> dict[str, Any]:
    data = _body(raw)
    kf, user = _pair(emu, data)
    servicer = _str(data, "servicer_userid", "zhangsan") or "zhangsan"
    return {"msgid": emu.servicer_text(kf, user, _str(data, "text"), servicer_userid=servicer)}


def recall(emu: WeComEmulator, headers: dict[str, str], raw: bytes) -> dict[str, Any]:
    data = _body(raw)
    kf, user = _pair(emu, data)
    return {"msgid": emu.recall(kf, user, _str(data, "msgid"))}


def _as_image(data: bytes) -> bytes:
    """JPG/PNG pass through; other formats (GIF, WebP…) become PNG, as WeChat would deliver them."""
    if data.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")):
        return data
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            out = io.BytesIO()
            img.convert("RGBA").save(out, format="PNG")
            return out.getvalue()
    except Exception as exc:
        raise BadInput("not an image") from exc


def upload(emu: WeComEmulator, headers: dict[str, str], raw: bytes) -> dict[str, Any]:
    """Multipart: open_kfid, external_userid, kind, file. Voice of any format → AMR-NB."""
    parts = multipart.parse(headers.get("content-type", ""), raw)
    fields = {p.name: p.data.decode("utf-8", "replace") for p in parts if p.filename is None}
    file_part = multipart.field(parts, "file")
    if file_part is None or not file_part.data:
        raise BadInput("file is required")
    if len(file_part.data) > MAX_UPLOAD:
        raise BadInput("file too large")
    kind = fields.get("kind", "file")
    if kind not in UPLOAD_KINDS:
        raise BadInput("kind must be image, voice, video or file")
    kf, user = _pair(emu, fields)
    data, filename = file_part.data, file_part.filename or "upload"
    if kind == "voice" and not amr.is_amr(data):
        data, filename = audio.to_amr(data), filename.rsplit(".", 1)[0] + ".amr"
    elif kind == "image":
        data = _as_image(data)
    return {"msgid": emu.customer_media(kf, user, kind, data, filename=filename)}


def media_file(emu: WeComEmulator, media_id: str, fmt: str) -> HttpAnswer:
    """Stored media for the page; ``format=wav`` converts AMR voice for playback."""
    item = media.lookup(emu, media_id)
    if item is None:
        return HttpAnswer(404, "text/plain; charset=utf-8", b"not found")
    if fmt == "wav" and amr.is_amr(item.data):
        return HttpAnswer(200, "audio/wav", audio.to_wav(item.data))
    headers = {"Content-Disposition": media.content_disposition(item.filename)}
    return HttpAnswer(200, item.content_type, item.data, headers)
