"""Send planned parts with ``kf/send_msg``: upload media, deterministic msgids, stop when WeCom refuses.

https://developer.work.weixin.qq.com/document/path/94677
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import KfApiError, KfDuplicateMsgId, KfError, KfSendForbidden
from .msgid import make_msgid
from .planner import OutboundPart, text_part

logger = logging.getLogger(__name__)

UPLOAD_FAILED_NOTICE = {
    "image": "图片发送失败，请稍后再试",
    "voice": "语音发送失败，请稍后再试",
    "video": "视频发送失败，请稍后再试",
    "file": "文件发送失败，请稍后再试",
}


class SupportsSend(Protocol):
    """The part of KfApi the sender needs."""

    def upload_media(self, kind: str, filename: str, data: bytes, content_type: str) -> str: ...

    def send_msg(
        self, touser: str, open_kfid: str, msgtype: str, body: dict[str, Any], msgid: str | None
    ) -> str: ...


@dataclass(frozen=True)
class SendOutcome:
    """``sent`` new messages, ``skipped_duplicates`` refused as already sent, and why sending stopped."""

    sent: int
    skipped_duplicates: int
    stopped_by: KfError | None

    @property
    def duplicates(self) -> int:
        return self.skipped_duplicates

    @property
    def delivered(self) -> int:
        """Parts the customer has (now or from an earlier attempt)."""
        return self.sent + self.skipped_duplicates


def _as_kf_error(exc: Exception, api: str) -> KfError:
    if isinstance(exc, KfError):
        return exc
    # Not from the client's own mapping (a bug or a library surprise): wrapped so callers see one type.
    return KfApiError(f"unexpected {type(exc).__name__} in {api}", api=api)


class ReplySender:
    """Sends the parts of one reply; never raises."""

    def __init__(self, api: SupportsSend) -> None:
        self._api = api

    def _resolve(self, part: OutboundPart, notice_sent: bool) -> tuple[OutboundPart | None, bool]:
        """The part ready to send (media uploaded), a notice in its place, or None to skip it."""
        if part.upload is None:
            return part, notice_sent
        upload = part.upload
        try:
            media_id = self._api.upload_media(upload.kind, upload.filename, upload.data, upload.content_type)
        except Exception as exc:
            error = _as_kf_error(exc, "media/upload")
            logger.warning(
                "upload of a %s failed (%s, errcode %s)", upload.kind, type(error).__name__, error.errcode
            )
            if notice_sent:
                return None, True  # one notice per reply is enough
            return text_part(UPLOAD_FAILED_NOTICE.get(upload.kind, "消息发送失败，请稍后再试")), True
        return OutboundPart(part.msgtype, {**part.body, "media_id": media_id}), notice_sent

    def send(
        self, parts: Sequence[OutboundPart], *, touser: str, open_kfid: str, msgid_base: str
    ) -> SendOutcome:
        """Send ``parts`` in order; part ``i`` carries ``make_msgid(msgid_base, i)``."""
        sent = duplicates = 0
        stopped_by: KfError | None = None
        notice_sent = False
        for index, planned in enumerate(parts):
            part, notice_sent = self._resolve(planned, notice_sent)
            if part is None:
                continue
            msgid = make_msgid(msgid_base, index)
            logger.debug(
                "send part %d/%d %s msgid=%s body=%r", index + 1, len(parts), part.msgtype, msgid, part.body
            )
            try:
                self._api.send_msg(touser, open_kfid, part.msgtype, part.body, msgid)
            except KfDuplicateMsgId:
                duplicates += 1  # sent before a crash or by another attempt: the customer has it
                continue
            except KfSendForbidden as exc:
                stopped_by = exc  # retrying cannot help and would count against nothing useful
                break
            except Exception as exc:
                stopped_by = _as_kf_error(exc, "kf/send_msg")
                break
            sent += 1
        if stopped_by is not None:
            logger.warning(
                "sent %d/%d parts (+%d duplicates), stopped by %s errcode %s",
                sent,
                len(parts),
                duplicates,
                type(stopped_by).__name__,
                stopped_by.errcode,
            )
        else:
            logger.info("sent %d/%d parts (+%d duplicates)", sent, len(parts), duplicates)
        return SendOutcome(sent, duplicates, stopped_by)
