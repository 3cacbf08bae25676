"""CoW's ChatChannel: the channel-independent pipeline from an inbound message to a sent reply.

compose context (prefix, plugins) -> produce (per-session queue) -> _handle in a worker thread:
_generate_reply (plugins, bot, voice) -> _decorate_reply -> _send_reply -> _send -> send.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from bridge.context import Context, ContextType
from bridge.reply import Reply, ReplyType
from channel.channel import Channel
from channel.dispatcher import DispatcherStopped, SessionDispatcher
from common import memory
from common.utils import redact_secrets
from config import conf
from plugins import Event, EventContext, PluginManager

logger = logging.getLogger(__name__)

BOT_FAILURE_TEXT = "抱歉，暂时无法回答，请稍后再试。"
# Shown instead of a reply this channel cannot send; which type it was goes to the log only.
UNSENDABLE_REPLY_TEXT = "抱歉，这条回复无法发送。"
_DIRECT_REPLY_TYPES = frozenset(
    {
        ReplyType.IMAGE_URL,
        ReplyType.VOICE,
        ReplyType.IMAGE,
        ReplyType.FILE,
        ReplyType.VIDEO,
        ReplyType.VIDEO_URL,
        ReplyType.TEXT_,
        ReplyType.CARD,
        ReplyType.MINIAPP,
        ReplyType.INVITE_ROOM,
    }
)


def check_prefix(content: str, prefix_list: list[str] | None) -> str | None:
    for prefix in prefix_list or ():
        if content.startswith(prefix):
            return prefix
    return None


def is_transient(exc: BaseException) -> bool:
    """Only failures known to be temporary are worth a retry; anything else could duplicate a send."""
    return isinstance(exc, ConnectionError | TimeoutError) or getattr(exc, "retryable", False) is True


class ChatChannel(Channel):
    name: str | None = None  # the bot's own display name
    user_id: str | None = None  # the bot's own user id

    _init_lock = threading.Lock()

    def __init__(self) -> None:
        # Workers start on the first produce(), so constructing a channel starts no thread.
        self._get_dispatcher()

    def _get_dispatcher(self) -> SessionDispatcher:
        # Created on demand too, for subclasses that do not call super().__init__().
        with ChatChannel._init_lock:
            dispatcher: SessionDispatcher | None = self.__dict__.get("_dispatcher")
            if dispatcher is None:
                cfg = conf()
                dispatcher = SessionDispatcher(
                    self._handle,
                    concurrency_in_session=int(cfg.get("concurrency_in_session", 1)),
                    max_workers=int(cfg.get("max_concurrent_sessions", 64)),
                    max_pending=int(cfg.get("max_pending_contexts", 10000)),
                    name=f"{type(self).__name__}-worker",
                )
                self.__dict__["_dispatcher"] = dispatcher
                self.__dict__.setdefault("_stopping", threading.Event())
            return dispatcher

    @property
    def _stopping(self) -> threading.Event:
        self._get_dispatcher()
        event: threading.Event = self.__dict__["_stopping"]
        return event

    # -- inbound ---------------------------------------------------------------------------------
    def _compose_context(self, ctype: ContextType, content: Any, **kwargs: Any) -> Context | None:
        """Build the Context for one message, or None to ignore it."""
        context = Context(ctype, content, dict(kwargs))
        if "origin_ctype" not in context:
            # A voice message comes back here as text: it must not need the text prefix.
            context["origin_ctype"] = ctype
        first_in = "receiver" not in context
        if first_in:
            cmsg = context["msg"]
            context.kwargs.setdefault("isgroup", bool(getattr(cmsg, "is_group", False)))
            context["session_id"] = cmsg.other_user_id
            context["receiver"] = cmsg.other_user_id
        e_context = PluginManager().emit_event(
            EventContext(Event.ON_RECEIVE_MESSAGE, {"channel": self, "context": context})
        )
        context = e_context["context"]
        if e_context.is_pass() or context is None:
            return context
        if context.type == ContextType.TEXT:
            return self._compose_text(context, str(context.content))
        if context.type == ContextType.VOICE and conf().get("voice_reply_voice"):
            self._desire_voice(context)
        return context

    def _compose_text(self, context: Context, content: str) -> Context | None:
        cfg = conf()
        # An empty list would silently ignore every customer: treat it like [""] (answer all).
        prefixes = cfg.get("single_chat_prefix") or [""]
        match_prefix = check_prefix(content, prefixes)
        if match_prefix is not None:
            content = content.replace(match_prefix, "", 1).strip()
        elif context["origin_ctype"] != ContextType.VOICE:
            logger.debug("message without a trigger prefix ignored")
            return None
        img_prefix = check_prefix(content, cfg.get("image_create_prefix") or [])
        if img_prefix:
            content = content.replace(img_prefix, "", 1).strip()
            context.type = ContextType.IMAGE_CREATE
        else:
            context.type = ContextType.TEXT
        context.content = content
        if cfg.get("always_reply_voice"):
            self._desire_voice(context)
        return context

    def _desire_voice(self, context: Context) -> None:
        if "desire_rtype" not in context and ReplyType.VOICE not in self.NOT_SUPPORT_REPLYTYPE:
            context["desire_rtype"] = ReplyType.VOICE

    def produce(self, context: Context) -> None:
        """Queue the context on its session; blocks while the queues are full (backpressure)."""
        is_command = context.type == ContextType.TEXT and str(context.content).startswith("#")
        try:
            # Management commands jump the session's queue, as in CoW.
            self._get_dispatcher().submit(context["session_id"], context, front=is_command)
        except DispatcherStopped:
            logger.warning("channel is stopping; context of session %s not queued", context.get("session_id"))

    def cancel_session(self, session_id: str) -> int:
        return self._get_dispatcher().cancel_session(session_id)

    def cancel_all_session(self) -> int:
        return self._get_dispatcher().cancel_all()

    def stop(self) -> None:
        """Stop dispatching: let in-flight contexts finish within ``shutdown_timeout_seconds``."""
        self._stopping.set()
        self._get_dispatcher().stop(float(conf().get("shutdown_timeout_seconds", 10.0)))

    # -- the pipeline (runs in a dispatcher worker, synchronously) -------------------------------
    def _handle(self, context: Context) -> None:
        """Run the whole pipeline for one context; returns after ``send`` returned or nothing is sent."""
        if context is None or not context.content:
            return
        logger.debug("handling context: %s", context)
        reply = self._generate_reply(context)
        logger.debug("reply before decoration: %s", reply)
        reply = self._decorate_reply(context, reply)
        self._send_reply(context, reply)

    def _generate_reply(self, context: Context, reply: Reply | None = None) -> Reply | None:
        e_context = PluginManager().emit_event(
            EventContext(
                Event.ON_HANDLE_CONTEXT,
                {"channel": self, "context": context, "reply": reply if reply is not None else Reply()},
            )
        )
        reply = e_context["reply"]
        if e_context.is_pass():
            return reply
        if context.type in (ContextType.TEXT, ContextType.IMAGE_CREATE):
            return self._ask_bot(context)
        if context.type == ContextType.VOICE:
            return self._reply_to_voice(context)
        if context.type == ContextType.IMAGE:
            # Kept for the session; the next text of the same customer takes it along (vision).
            memory.USER_IMAGE_CACHE[context["session_id"]] = {
                "path": context.content,
                "msg": context.get("msg"),
            }
            return None
        logger.warning("no default handling for context type %s", context.type)
        return None

    def _ask_bot(self, context: Context) -> Reply:
        cached = memory.USER_IMAGE_CACHE.pop(context.get("session_id"))
        if cached:
            cmsg = cached.get("msg")
            if cmsg is not None and hasattr(cmsg, "prepare"):
                cmsg.prepare()
            context["image_paths"] = [*(context.get("image_paths") or []), cached["path"]]
        try:
            return self.build_reply_content(context.content, context)
        except Exception as exc:
            logger.error("bot failed (%s): %s", type(exc).__name__, redact_secrets(str(exc)))
            return Reply(ReplyType.ERROR, BOT_FAILURE_TEXT)

    def _reply_to_voice(self, context: Context) -> Reply | None:
        cmsg = context.get("msg")
        if cmsg is not None and hasattr(cmsg, "prepare"):
            cmsg.prepare()
        file_path = str(context.content)
        wav_path = os.path.splitext(file_path)[0] + ".wav"
        if wav_path == file_path:
            wav_path = file_path + ".wav"
        try:
            from voice.audio_convert import any_to_wav

            any_to_wav(file_path, wav_path)
        except Exception as exc:  # some recognisers accept the original format too
            logger.warning("voice conversion failed (%s); using the original file", type(exc).__name__)
            wav_path = file_path
        try:
            reply = self.build_voice_to_text(wav_path)
        except Exception as exc:
            logger.error("voice recognition failed (%s): %s", type(exc).__name__, redact_secrets(str(exc)))
            reply = Reply(ReplyType.ERROR, BOT_FAILURE_TEXT)
        finally:
            if wav_path != file_path and os.path.exists(wav_path):
                os.remove(wav_path)  # ours; the original belongs to the channel
        if reply.type != ReplyType.TEXT:
            return reply
        new_context = self._compose_context(ContextType.TEXT, reply.content, **context.kwargs)
        if new_context is None:
            return None
        return self._generate_reply(new_context)

    def _decorate_reply(self, context: Context, reply: Reply | None) -> Reply | None:
        if reply is None or not reply.type:
            return reply
        e_context = PluginManager().emit_event(
            EventContext(Event.ON_DECORATE_REPLY, {"channel": self, "context": context, "reply": reply})
        )
        reply = e_context["reply"]
        desire_rtype = context.get("desire_rtype")
        if not e_context.is_pass() and reply is not None and reply.type:
            if reply.type in self.NOT_SUPPORT_REPLYTYPE:
                logger.error("reply type %s is not supported by %s", reply.type, type(self).__name__)
                reply = Reply(ReplyType.ERROR, UNSENDABLE_REPLY_TEXT)
            if reply.type == ReplyType.TEXT:
                if desire_rtype == ReplyType.VOICE and ReplyType.VOICE not in self.NOT_SUPPORT_REPLYTYPE:
                    voice = self._to_voice(reply.content)
                    if voice.type != ReplyType.TEXT:
                        return self._decorate_reply(context, voice)
                cfg = conf()
                reply.content = (
                    f"{cfg.get('single_chat_reply_prefix', '')}{reply.content}"
                    f"{cfg.get('single_chat_reply_suffix', '')}"
                )
            elif reply.type in (ReplyType.ERROR, ReplyType.INFO):
                reply.content = f"[{reply.type}]\n{reply.content}"
            elif reply.type not in _DIRECT_REPLY_TYPES:
                logger.error("unknown reply type %s dropped", reply.type)
                return None
        if (
            desire_rtype
            and reply is not None
            and reply.type not in (desire_rtype, ReplyType.ERROR, ReplyType.INFO)
        ):
            logger.warning("wanted a %s reply, got %s", desire_rtype, reply.type)
        return reply

    def _to_voice(self, text: str) -> Reply:
        try:
            return self.build_text_to_voice(text)
        except Exception as exc:
            logger.warning("text to voice failed (%s); answering in text", type(exc).__name__)
            return Reply(ReplyType.TEXT, text)

    def _send_reply(self, context: Context, reply: Reply | None) -> None:
        if reply is None or not reply.type:
            return
        e_context = PluginManager().emit_event(
            EventContext(Event.ON_SEND_REPLY, {"channel": self, "context": context, "reply": reply})
        )
        reply = e_context["reply"]
        if not e_context.is_pass() and reply is not None and reply.type:
            logger.debug("sending reply %s", reply)
            self._send(reply, context)

    def _send(self, reply: Reply, context: Context, retry_cnt: int = 0) -> bool:
        """Call ``send``; retry only transient failures, a bounded number of times. True when sent."""
        cfg = conf()
        attempts = 1 + max(0, int(cfg.get("send_retry_attempts", 2)))
        delay = float(cfg.get("send_retry_delay_seconds", 1.0))
        for attempt in range(retry_cnt, attempts):
            try:
                self.send(reply, context)
                return True
            except NotImplementedError:
                logger.error("%s cannot send %s replies", type(self).__name__, reply.type)
                return False
            except Exception as exc:
                reason = f"{type(exc).__name__}: {redact_secrets(str(exc))}"
                if not is_transient(exc):
                    logger.error("send failed, not retried: %s", reason)
                    return False
                if attempt + 1 >= attempts or self._stopping.is_set():
                    logger.error("send failed after %d attempts: %s", attempt + 1, reason)
                    return False
                wait = min(delay * 2**attempt, 30.0)
                logger.warning("send failed (%s); retrying in %.1f s", reason, wait)
                if self._stopping.wait(wait):
                    logger.error("send abandoned: channel is stopping")
                    return False
        return False
