"""Reply → the list of KF messages to send, within the per-customer-message budget.

Never raises and never returns silence for a failed media item: anything over a limit, undecodable or
not downloadable becomes one short text part telling the customer (the operator's texts,
``desk/texts.py``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from bridge.reply import Reply, ReplyType

from ..desk.texts import CustomerTexts
from . import audio, images, video_files
from .markdown import markdown_to_plain
from .media import MB, MediaProblem, MediaUpload, download, local_path, read_path, read_stream
from .text import split_text

logger = logging.getLogger(__name__)

_TEXT_TYPES = (ReplyType.TEXT, ReplyType.TEXT_, ReplyType.INFO, ReplyType.ERROR)
_UNSUPPORTED = (ReplyType.CARD, ReplyType.INVITE_ROOM, ReplyType.MINIAPP)


@dataclass(frozen=True)
class OutboundPart:
    """One ``kf/send_msg`` call; for media the sender uploads ``upload`` and adds ``media_id``."""

    msgtype: str
    body: dict[str, Any] = field(default_factory=dict)
    upload: MediaUpload | None = None


@dataclass(frozen=True)
class OutboundLimits:
    """WeCom's limits (defaults); tests shrink them to stay fast."""

    text_bytes: int = 2048
    image_bytes: int = images.IMAGE_MAX_BYTES
    image_source_bytes: int = 64 * MB  # what we accept to convert, before fitting into image_bytes
    voice_bytes: int = audio.VOICE_MAX_BYTES
    voice_seconds: float = audio.VOICE_MAX_SECONDS
    voice_part_seconds: float = audio.VOICE_PART_SECONDS
    video_bytes: int = video_files.VIDEO_MAX_BYTES
    file_bytes: int = video_files.FILE_MAX_BYTES


@dataclass(frozen=True)
class _Plan:
    budget: int
    http_timeout: float
    max_download_bytes: int
    limits: OutboundLimits
    texts: CustomerTexts


def text_part(text: str) -> OutboundPart:
    return OutboundPart("text", {"content": text})


def _text_parts(content: Any, plan: _Plan) -> list[OutboundPart]:
    plain = markdown_to_plain("" if content is None else str(content))
    chunks = split_text(
        plain, max_bytes=plan.limits.text_bytes, max_parts=plan.budget, marker=plan.texts.truncated
    )
    if not chunks:
        logger.warning("empty text reply: nothing to send")
    return [text_part(chunk) for chunk in chunks]


def _image_source(content: Any, plan: _Plan, from_url: bool) -> bytes:
    cap = plan.limits.image_source_bytes
    if isinstance(content, str) and content.startswith("file://"):
        return read_path(local_path(content), max_bytes=cap)
    if from_url or (isinstance(content, str) and content.startswith(("http://", "https://"))):
        cap = min(cap, plan.max_download_bytes)
        return download(str(content), max_bytes=cap, timeout=plan.http_timeout)
    if isinstance(content, bytes | bytearray):
        if len(content) > cap:
            raise MediaProblem(f"{len(content)} bytes > {cap}", too_big=True)
        return bytes(content)
    if isinstance(content, str | os.PathLike):
        return read_path(os.fspath(content), max_bytes=cap)
    if hasattr(content, "read"):
        return read_stream(content, max_bytes=cap)
    raise MediaProblem(f"unsupported image content {type(content).__name__}")


def _image_parts(content: Any, plan: _Plan, from_url: bool) -> list[OutboundPart]:
    data = _image_source(content, plan, from_url)
    upload = images.prepare_image(data, max_bytes=plan.limits.image_bytes)
    return [OutboundPart("image", {}, upload)]


def _voice_parts(content: Any, plan: _Plan) -> list[OutboundPart]:
    path = local_path(content)
    if not path or not os.path.isfile(path):
        raise MediaProblem("voice reply is not a local file")
    limits = plan.limits
    uploads, leftover = audio.voice_parts(
        path,
        plan.budget,
        part_seconds=limits.voice_part_seconds,
        max_seconds=limits.voice_seconds,
        max_bytes=limits.voice_bytes,
    )
    parts = [OutboundPart("voice", {}, upload) for upload in uploads]
    if leftover and plan.budget > 1:
        # Documented choice: the customer hears the first budget-1 parts and is told the rest was cut.
        parts = [*parts[: plan.budget - 1], text_part(plan.texts.voice_cut)]
    if leftover:
        logger.warning("voice reply longer than %d part(s): the rest was cut", plan.budget)
    return parts


def _video_parts(content: Any, plan: _Plan, from_url: bool) -> list[OutboundPart]:
    cap = plan.limits.video_bytes
    if from_url and str(content).startswith("file://"):
        from_url = False  # a local video CoW found in the bot's text
    url = str(content) if from_url else ""
    try:
        if from_url:
            data = download(url, max_bytes=min(cap, plan.max_download_bytes), timeout=plan.http_timeout)
            filename = os.path.basename(url.split("?", 1)[0]) or "video.mp4"
        else:
            path = local_path(content)
            data = read_path(path, max_bytes=cap)
            filename = os.path.basename(path)
        return [OutboundPart("video", {}, video_files.prepare_video(data, filename=filename, max_bytes=cap))]
    except MediaProblem as problem:
        if url:  # the customer can still watch it in the browser
            problem.link = url
        raise


def _file_parts(content: Any, plan: _Plan) -> list[OutboundPart]:
    path = local_path(content)
    cap = plan.limits.file_bytes
    data = read_path(path, max_bytes=cap)
    return [OutboundPart("file", {}, video_files.prepare_file(path, data, max_bytes=cap))]


def _dispatch(reply: Reply, plan: _Plan) -> list[OutboundPart]:
    kind, content = reply.type, reply.content
    if kind in _TEXT_TYPES:
        return _text_parts(content, plan)
    if kind in (ReplyType.IMAGE, ReplyType.IMAGE_URL):
        return _image_parts(content, plan, from_url=kind == ReplyType.IMAGE_URL)
    if kind == ReplyType.VOICE:
        return _voice_parts(content, plan)
    if kind in (ReplyType.VIDEO, ReplyType.VIDEO_URL):
        return _video_parts(content, plan, from_url=kind == ReplyType.VIDEO_URL)
    if kind == ReplyType.FILE:
        return _file_parts(content, plan)
    if kind in _UNSUPPORTED:
        logger.warning("reply type %s is not supported by the KF channel: not sent", kind)
    else:
        logger.warning("unknown reply type %r: not sent", kind)
    return []


_KINDS: dict[ReplyType | None, str] = {
    ReplyType.IMAGE: "image",
    ReplyType.IMAGE_URL: "image",
    ReplyType.VOICE: "voice",
    ReplyType.VIDEO: "video",
    ReplyType.VIDEO_URL: "video",
    ReplyType.FILE: "file",
}


def _notice(problem: MediaProblem, reply: Reply, plan: _Plan) -> OutboundPart:
    """The operator's text for a media item that cannot be sent, within one text part."""
    kind = _KINDS.get(reply.type, "")
    texts = plan.texts
    if problem.link:
        text = texts.video_link.format(url=problem.link)
    elif problem.too_big:
        text = texts.media_too_big_for(kind)
    else:
        text = texts.media_failed_for(kind)
    chunks = split_text(text, max_bytes=plan.limits.text_bytes, max_parts=1, marker=texts.truncated)
    return text_part(chunks[0] if chunks else texts.media_failed_for(kind))


def plan_reply(
    reply: Reply,
    budget: int,
    *,
    http_timeout: float = 10.0,
    max_download_bytes: int = 64 * MB,
    limits: OutboundLimits | None = None,
    texts: CustomerTexts | None = None,
) -> list[OutboundPart]:
    """The parts (at most ``budget``) that answer with ``reply``; never raises.

    ``http_timeout`` bounds each download of a URL the reply points at.
    """
    if budget < 1:
        logger.warning("no send budget left: reply of type %s not sent", reply.type)
        return []
    texts = texts or CustomerTexts()
    plan = _Plan(budget, http_timeout, max_download_bytes, limits or OutboundLimits(), texts)
    try:
        parts = _dispatch(reply, plan)
    except MediaProblem as problem:
        logger.warning("reply of type %s replaced by a notice: %s", reply.type, problem.reason)
        parts = [_notice(problem, reply, plan)]
    except Exception:  # a bug or a library surprise must still answer the customer
        logger.exception("planning a reply of type %s failed", reply.type)
        parts = [text_part(texts.media_failed_for(_KINDS.get(reply.type, "")))]
    if len(parts) > budget:  # defensive: every branch already respects the budget
        parts = parts[:budget]
    logger.debug("planned %d part(s): %s", len(parts), [p.msgtype for p in parts])
    return parts
