"""CoW's ``ChatChannel`` in miniature, with upstream's dispatch and send behaviour.

compose (``single_chat_prefix``, session_id/receiver = ``msg.other_user_id``) -> ``produce`` into a
per-session queue -> ONE consumer thread polls the queues every 0.2 s and runs ``_handle`` on a
module-level pool of 8 threads, ``concurrency_in_session`` contexts per session -> bot via the
Bridge -> ``_decorate_reply`` -> ``_send_reply`` (2.x: a text's images as separate sends; 2.1: every
``extra_replies`` item too) -> ``_send``, which retries ANY exception twice, after 3 s and 6 s.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import host_probe
import host_profile as profile

from bridge.context import Context, ContextType
from bridge.reply import Reply, ReplyType
from channel.channel import Channel
from common.log import logger
from config import conf

handler_pool = ThreadPoolExecutor(max_workers=8)
POLL_SECONDS = 0.2
MAX_MEDIA_ITEMS = 5
_MEDIA_PATTERNS = (
    re.compile(r"\[图片:\s*([^\]]+)\]"),
    re.compile(r"!\[.*?\]\(([^\)]+)\)"),
    re.compile(r"https?://[^\s]+\.(?:jpg|jpeg|png|gif|webp)", re.IGNORECASE),
)
_MEDIA_REPLY_TYPES = (
    ReplyType.IMAGE_URL,
    ReplyType.VOICE,
    ReplyType.IMAGE,
    ReplyType.FILE,
    ReplyType.VIDEO,
    ReplyType.VIDEO_URL,
)


def check_prefix(content: str, prefixes: list[str] | None) -> str | None:
    for prefix in prefixes or ():
        if content.startswith(prefix):
            return prefix
    return None


def _media_items(text: str) -> list[str]:
    found: list[str] = []
    for pattern in _MEDIA_PATTERNS:
        found += [m for m in pattern.findall(text) if m not in found]
    return found[:MAX_MEDIA_ITEMS]


class _Session:
    def __init__(self, limit: int) -> None:
        self.queue: deque[Context] = deque()
        self.limit = limit
        self.running = 0


class ChatChannel(Channel):
    name: Any = None
    user_id: Any = None

    def __init__(self) -> None:
        self.sessions: dict[str, _Session] = {}
        self.lock = threading.Lock()
        threading.Thread(target=self.consume, name="cow-consume", daemon=True).start()

    # --- inbound ----------------------------------------------------------------------------------

    def _compose_context(self, ctype: ContextType, content: Any, **kwargs: Any) -> Context | None:
        context = Context(ctype, content)
        context.kwargs = kwargs
        if profile.RELEASE >= (2, 1) and "channel_type" not in context:
            context["channel_type"] = self.channel_type
        if "origin_ctype" not in context:
            context["origin_ctype"] = ctype
        if "receiver" not in context:
            cmsg = context["msg"]
            conf().get_user_data(cmsg.from_user_id)
            context["session_id"] = cmsg.other_user_id
            context["receiver"] = cmsg.other_user_id
        if ctype == ContextType.TEXT:
            return self._compose_text(context, str(content))
        return context

    def _compose_text(self, context: Context, content: str) -> Context | None:
        match = check_prefix(content, conf().get("single_chat_prefix", [""]))
        if match is not None:
            content = content.replace(match, "", 1).strip()
        elif context["origin_ctype"] != ContextType.VOICE:
            logger.info("[chat_channel]receive single chat msg, but checkprefix didn't match")
            return None
        content = content.strip()
        image_prefix = check_prefix(content, conf().get("image_create_prefix", [""]))
        if image_prefix:
            content = content.replace(image_prefix, "", 1)
            context.type = ContextType.IMAGE_CREATE
        else:
            context.type = ContextType.TEXT
        context.content = content.strip()
        return context

    def produce(self, context: Context) -> None:
        session_id = context["session_id"]
        host_probe.record("produce", session=session_id)
        limit = int(conf().get("concurrency_in_session", profile.DEFAULT_CONCURRENCY_IN_SESSION))
        with self.lock:
            session = self.sessions.setdefault(session_id, _Session(limit))
            if context.type == ContextType.TEXT and str(context.content).startswith("#"):
                session.queue.appendleft(context)  # admin commands first
            else:
                session.queue.append(context)

    def consume(self) -> None:
        while True:  # a daemon thread for the life of the process, as upstream
            with self.lock:
                for session_id, session in list(self.sessions.items()):
                    if session.running < session.limit and session.queue:
                        session.running += 1
                        future = handler_pool.submit(self._handle, session.queue.popleft())
                        future.add_done_callback(self._done_callback(session))
                    elif not session.running and not session.queue:
                        del self.sessions[session_id]
            time.sleep(POLL_SECONDS)

    def _done_callback(self, session: _Session) -> Any:
        def done(future: Future[None]) -> None:
            if future.exception() is not None:
                logger.error(f"Worker return exception: {future.exception()}")
            with self.lock:
                session.running -= 1

        return done

    # --- one context --------------------------------------------------------------------------------

    def _handle(self, context: Context) -> None:
        try:
            if context is None or not context.content:
                return
            reply = self._generate_reply(context)
            if reply and reply.content:
                decorated = self._decorate_reply(context, reply)
                if decorated is not None:
                    self._send_reply(context, decorated)
        finally:
            host_probe.record("handled", session=context.get("session_id") if context else None)

    def _generate_reply(self, context: Context) -> Reply | None:
        if context.type in (ContextType.TEXT, ContextType.IMAGE_CREATE):
            context["channel"] = self
            return self.build_reply_content(context.content, context)
        logger.debug(f"[chat_channel] no default handling for context type {context.type}")
        return None

    def _decorate_reply(self, context: Context, reply: Reply) -> Reply | None:
        if reply.type in self.NOT_SUPPORT_REPLYTYPE:
            logger.error(f"[chat_channel]reply type not support: {reply.type}")
            reply.type = ReplyType.ERROR
            reply.content = f"不支持发送的消息类型: {reply.type}"
        if reply.type == ReplyType.TEXT:
            prefix = conf().get("single_chat_reply_prefix", "")
            reply.content = prefix + reply.content + conf().get("single_chat_reply_suffix", "")
        elif reply.type in (ReplyType.ERROR, ReplyType.INFO):
            reply.content = f"[{reply.type}]\n{reply.content}"
        elif reply.type not in _MEDIA_REPLY_TYPES:
            logger.error(f"[chat_channel] unknown reply type: {reply.type}")
            return None
        return reply

    def _send_reply(self, context: Context, reply: Reply) -> None:
        if not reply or not reply.type:
            return
        if profile.MULTI_SEND and reply.type == ReplyType.TEXT:
            self._extract_and_send_images(reply, context)
        else:
            self._send(reply, context)
        if profile.EXTRA_REPLIES:
            for extra in getattr(reply, "extra_replies", None) or []:
                time.sleep(0.3)
                self._send(extra, context)

    def _extract_and_send_images(self, reply: Reply, context: Context) -> None:
        self._send(reply, context)
        for i, ref in enumerate(_media_items(str(reply.content))):
            if ref.startswith(("http://", "https://")):
                media = Reply(ReplyType.IMAGE_URL, ref)
            elif os.path.exists(ref):
                media = Reply(ReplyType.IMAGE_URL, f"file://{ref}")
            else:
                logger.warning(f"[chat_channel] Media file not found or invalid URL: {ref}")
                continue
            if i > 0:
                time.sleep(0.5)
            self._send(media, context)

    def _send(self, reply: Reply, context: Context, retry_cnt: int = 0) -> None:
        session = context.get("session_id")
        try:
            self.send(reply, context)
            host_probe.record("send", session=session, type=str(reply.type), attempt=retry_cnt)
        except Exception as e:
            host_probe.record("send_error", session=session, type=str(reply.type), error=repr(e)[:300])
            logger.error(f"[chat_channel] sendMsg error: {e}")
            if isinstance(e, NotImplementedError):
                return
            logger.exception(e)
            if retry_cnt < 2:
                time.sleep(3 + 3 * retry_cnt)
                self._send(reply, context, retry_cnt + 1)
