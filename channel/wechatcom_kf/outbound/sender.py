"""Send one planned part with ``kf/send_msg``: upload its media first, classify WeCom's answer.

https://developer.work.weixin.qq.com/document/path/94677. The loop over a reply's parts, its retries
and what is recorded between parts are the delivery's (``delivery.py``).
"""

from __future__ import annotations

import enum
import logging
from typing import Any, Protocol

from ..desk.texts import CustomerTexts
from ..errors import KfApiError, KfDuplicateMsgId, KfError
from .planner import OutboundPart, text_part

logger = logging.getLogger(__name__)


class SupportsSend(Protocol):
    """The part of KfApi the sender needs."""

    def upload_media(self, kind: str, filename: str, data: bytes, content_type: str) -> str: ...

    def send_msg(
        self, touser: str, open_kfid: str, msgtype: str, body: dict[str, Any], msgid: str | None
    ) -> str: ...


class Accepted(enum.Enum):
    SENT = "sent"
    DUPLICATE = "duplicate"  # the msgid was used: an earlier attempt got through, the customer has it
    NOTICE = "notice"  # the media could not be uploaded; a short text went in its place
    SKIPPED = "skipped"  # the media could not be uploaded and the reply already carries a notice


def as_kf_error(exc: Exception, api: str) -> KfError:
    if isinstance(exc, KfError):
        return exc
    # Not from the client's own mapping (a bug or a library surprise): wrapped so callers see one type.
    return KfApiError(f"unexpected {type(exc).__name__} in {api}", api=api)


class PartSender:
    def __init__(self, api: SupportsSend, texts: CustomerTexts | None = None) -> None:
        self._api = api
        self._texts = texts or CustomerTexts()

    def send(
        self, part: OutboundPart, *, touser: str, open_kfid: str, msgid: str, notice_sent: bool
    ) -> Accepted:
        """Send ``part`` with ``msgid``; raises the KfError that stopped it (retryable or not).

        A media part whose upload is refused for good becomes a text notice (one per reply:
        ``notice_sent`` says whether the reply has one already); a transient upload failure is raised
        like a failed send, so the delivery retries the part.
        """
        if part.upload is not None:
            resolved = self._upload(part, notice_sent)
            if resolved is None:
                return Accepted.SKIPPED
            ready, is_notice = resolved
        else:
            ready, is_notice = part, False
        logger.debug("send %s msgid=%s body=%r", ready.msgtype, msgid, ready.body)
        try:
            self._api.send_msg(touser, open_kfid, ready.msgtype, ready.body, msgid)
        except KfDuplicateMsgId:
            return Accepted.DUPLICATE
        except Exception as exc:
            raise as_kf_error(exc, "kf/send_msg") from None
        return Accepted.NOTICE if is_notice else Accepted.SENT

    def _upload(self, part: OutboundPart, notice_sent: bool) -> tuple[OutboundPart, bool] | None:
        """(the part with its media_id, False), (a notice instead, True), or None to skip it."""
        upload = part.upload
        assert upload is not None
        try:
            media_id = self._api.upload_media(upload.kind, upload.filename, upload.data, upload.content_type)
        except Exception as exc:
            error = as_kf_error(exc, "media/upload")
            if error.retryable:
                raise error from None
            logger.warning(
                "upload of a %s refused (%s, errcode %s)", upload.kind, type(error).__name__, error.errcode
            )
            if notice_sent:
                return None
            return text_part(self._texts.media_failed_for(upload.kind)), True
        return OutboundPart(part.msgtype, {**part.body, "media_id": media_id}), False
