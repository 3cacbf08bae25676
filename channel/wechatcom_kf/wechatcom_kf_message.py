"""One customer message (a parsed ``kf/sync_msg`` item, origin 3) as a CoW ``ChatMessage``.

Field reference: https://developer.work.weixin.qq.com/document/path/94670

Session isolation: ``other_user_id`` is ``"<open_kfid>:<external_userid>"``. CoW uses it both as the
session id and as the receiver; a composite keeps one customer's conversations with two KF accounts
apart (separate histories, separate ordering). The channel's ``send()`` never parses it: it reads the
real ids from ``context["msg"]`` (``.open_kfid`` / ``.external_userid``).

Media (image, voice, video, file) is downloaded lazily by ``prepare()`` (CoW's ``_prepare_fn``);
afterwards ``content`` is the local path. A failed download turns the message into a TEXT message
explaining the problem, so the customer is still answered.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from bridge.context import ContextType
from channel.chat_message import ChatMessage

from .inbound.items import CustomerMessage
from .inbound.media import IMAGE_EXTS, MediaFetcher, download_and_save, voice_as_wav
from .inbound.render import MEDIA_LABELS, field, render_body

logger = logging.getLogger(__name__)

MEDIA_CTYPES: dict[str, ContextType] = {
    "image": ContextType.IMAGE,
    "voice": ContextType.VOICE,
    "video": ContextType.VIDEO,
    "file": ContextType.FILE,
}
# Messages that carry the customer's question; everything else is an attachment to it.
QUESTION_TYPES = frozenset({"text", "voice"})


def session_key(open_kfid: str, external_userid: str) -> str:
    """The ``other_user_id`` / CoW session id of a customer on one KF account."""
    return f"{open_kfid}:{external_userid}"


def media_failure_text(kind: str) -> str:
    """What the bot sees when a customer's media could not be fetched or stored."""
    label = MEDIA_LABELS.get(kind, "文件")
    return f"[用户发送了{label}，但{label}下载失败，请礼貌地请用户重新发送或改用文字描述]"


class WechatComKfMessage(ChatMessage):
    """A customer message of a KF account; ``item`` is also CoW's raw message."""

    def __init__(self, item: CustomerMessage, media_fetcher: MediaFetcher | None, media_dir: Path) -> None:
        super().__init__(item)
        self.item = item
        self.msg_id = item.msgid
        self.msgtype = item.msgtype
        self.open_kfid = item.open_kfid
        self.external_userid = item.external_userid
        self.origin = 3
        send_time = item.send_time
        self.create_time = send_time if send_time is not None and send_time > 0 else int(time.time())
        self.from_user_id = self.external_userid
        self.to_user_id = self.open_kfid
        self.other_user_id = session_key(self.open_kfid, self.external_userid)
        self.actual_user_id = self.external_userid
        self.is_group = False
        self.body: dict[str, Any] = item.body
        self.menu_id: str | None = field(self.body, "menu_id", 128) or None
        self.display_name = ""  # sanitized original filename of a file, once downloaded
        self.media_path: Path | None = None
        self.media_failed = False
        self.recovered = False  # claimed back from an earlier run (its reply may be half sent)
        self._media_fetcher = media_fetcher
        self._media_dir = media_dir
        self._prepare_lock = threading.Lock()
        self._init_content()

    def _init_content(self) -> None:
        if self.msgtype == "text":
            self.ctype = ContextType.TEXT
            content = self.body.get("content")
            self.content = content if isinstance(content, str) else ""
        elif self.msgtype in MEDIA_CTYPES:
            media_id = self.body.get("media_id")
            if isinstance(media_id, str) and media_id:
                self.ctype = MEDIA_CTYPES[self.msgtype]
                self.content = None  # the local path, once prepare() ran
                self._prepare_fn = self._download
            else:
                logger.warning("%s message %s has no media_id", self.msgtype, self.msg_id)
                self._fail_media()
        else:
            self.ctype = ContextType.TEXT
            self.content = render_body(self.msgtype, self.body)

    @property
    def is_attachment(self) -> bool:
        """True when this message waits for the customer's question (image, file, location, ...)."""
        return self.msgtype not in QUESTION_TYPES

    @property
    def is_image(self) -> bool:
        """True when this is an image that was downloaded successfully."""
        return (
            self.ctype == ContextType.IMAGE
            and self.media_path is not None
            and (self.media_path.suffix in IMAGE_EXTS)
        )

    def prepare(self) -> None:
        """Download the media once (thread-safe); never raises for download problems."""
        with self._prepare_lock:
            super().prepare()

    def _fail_media(self) -> None:
        self.media_failed = True
        self.ctype = ContextType.TEXT
        self.content = media_failure_text(self.msgtype)

    def _download(self) -> None:
        media_id = self.body.get("media_id")
        if self._media_fetcher is None:
            logger.warning("no media fetcher configured; %s %s answered as text", self.msgtype, self.msg_id)
            self._fail_media()
            return
        try:
            saved = download_and_save(
                self._media_fetcher, str(media_id), self.msgtype, str(self.msg_id), self._media_dir
            )
        except Exception as exc:  # any failure must still yield an answer (invariant 7)
            # Type and errcode only: exception texts of HTTP clients can carry URLs with credentials.
            logger.warning(
                "download of %s %s failed (%s, errcode %s); answering with a text",
                self.msgtype,
                self.msg_id,
                type(exc).__name__,
                getattr(exc, "errcode", None),
            )
            self._fail_media()
            return
        self.media_path = voice_as_wav(saved, self._media_dir) if self.msgtype == "voice" else saved.path
        self.display_name = saved.display_name
        self.content = str(self.media_path)

    def describe(self) -> str:
        """A one-line description of this message as an attachment of a turn (for the bot's text)."""
        if self.ctype == ContextType.TEXT or self.content is None:
            return str(self.content or "")
        if self.msgtype == "file":
            return f"[用户发送了文件：{self.display_name or '未命名文件'}]"
        return f"[用户发送了{MEDIA_LABELS.get(self.msgtype, '文件')}]"

    def __str__(self) -> str:
        return (
            f"WechatComKfMessage(id={self.msg_id}, msgtype={self.msgtype}, ctype={self.ctype}, "
            f"open_kfid={self.open_kfid}, external_userid={self.external_userid})"
        )
