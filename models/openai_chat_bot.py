"""A chat bot for any OpenAI-compatible `/chat/completions` API, with bounded per-session memory.

API reference: https://platform.openai.com/docs/api-reference/chat/create
Streaming: https://platform.openai.com/docs/api-reference/chat-streaming
"""

from __future__ import annotations

import base64
import json
import logging
import mimetypes
import os
import time
from collections.abc import Callable
from typing import Any

from bridge.context import Context, ContextType
from bridge.reply import Reply, ReplyType
from models.bot import Bot
from models.openai_http import OpenAIHttpClient, OpenAIRequestError, chinese_error_message
from models.session_memory import CowSessions, SessionMemory
from models.streaming import AnswerText, partial_callback, read_events

logger = logging.getLogger(__name__)

# CoW's "#清除所有" / "#reset_all" clear everyone's memory; here every user may be an outside customer,
# so they clear only the asker's. Clearing all is an operator's action (godcmd's #resetall, admin only).
RESET_COMMANDS = frozenset({"#清除记忆", "#reset", "#清除", "#清除所有", "#reset_all"})
DEFAULT_SESSION = "default"
MAX_IMAGE_BYTES = 10 * 1024 * 1024  # bigger images are skipped rather than blowing up the request

_MAGIC_MIME = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


class OpenAIChatBot(Bot):
    """Answers TEXT contexts (with `image_paths` as vision input when enabled) through `client`."""

    def __init__(
        self,
        client: OpenAIHttpClient,
        *,
        model: str = "gpt-4o-mini",
        system_prompt: str = "",
        temperature: float = 0.7,
        max_history_turns: int = 10,
        max_history_chars: int = 4000,
        expires_in_seconds: float = 3600.0,
        max_sessions: int = 10_000,
        vision_input: bool = False,
        stream: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.stream = stream
        self.system_prompt = system_prompt
        self.temperature = temperature
        self.vision_input = vision_input
        self.client = client
        self.memory = SessionMemory(
            max_turns=max_history_turns,
            max_chars=max_history_chars,
            expires_in_seconds=expires_in_seconds,
            max_sessions=max_sessions,
            clock=clock,
        )
        self.sessions = CowSessions(self.memory)  # CoW's name: godcmd's #reset and #resetall use it

    def reply(self, query: str, context: Context | None = None) -> Reply:
        turn = read_turn(query, context, self.memory.clear)
        if isinstance(turn, Reply):
            return turn
        session_id, query, image_paths = turn
        logger.debug("[openai] session=%s query=%s images=%d", session_id, query, len(image_paths))
        messages = self._build_messages(session_id, query, image_paths)
        try:
            answer = self._complete(messages, context)
        except OpenAIRequestError as err:
            logger.warning("[openai] session=%s chat completion failed: %s", session_id, err)
            return Reply(ReplyType.ERROR, chinese_error_message(err))
        self.memory.add_turn(session_id, _remembered_query(query, image_paths), answer)
        logger.debug("[openai] session=%s answer=%s", session_id, answer)
        return Reply(ReplyType.TEXT, answer)

    def _build_messages(self, session_id: str, query: str, image_paths: list[str]) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        for turn in self.memory.history(session_id, reserve_chars=len(query) + len(self.system_prompt)):
            messages.append({"role": "user", "content": turn.user})
            messages.append({"role": "assistant", "content": turn.assistant})
        messages.append({"role": "user", "content": self._user_content(query, image_paths)})
        return messages

    def _user_content(self, query: str, image_paths: list[str]) -> str | list[dict[str, Any]]:
        if not image_paths:
            return query
        if not self.vision_input:
            # The model should know an image came, so it can say it cannot see it.
            note = f"[用户还发送了 {len(image_paths)} 张图片，当前无法查看图片内容]"
            return f"{query}\n{note}" if query else note
        parts: list[dict[str, Any]] = [{"type": "text", "text": query or "请看这些图片。"}]
        for path in image_paths:
            url = image_data_url(path)
            if url is not None:
                parts.append({"type": "image_url", "image_url": {"url": url}})
        return parts

    def _complete(self, messages: list[dict[str, Any]], context: Context | None) -> str:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": self.temperature}
        if self.stream:
            body["stream"] = True
            resp = self.client.post("chat/completions", json=body, stream=True)
            return _streamed_answer(resp, self.client.timeout, partial_callback(context))
        resp = self.client.post("chat/completions", json=body)
        try:
            data = resp.json()
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise OpenAIRequestError("bad_response", resp.status_code) from None
        if not isinstance(content, str) or not content.strip():
            raise OpenAIRequestError("bad_response", resp.status_code)
        return content.strip()


def _streamed_answer(resp: Any, timeout: float, on_partial: Callable[[str], None] | None) -> str:
    """The text of a chat completion stream (``data: {chunk}`` events, then ``data: [DONE]``).

    A stream that ends without ``[DONE]`` or a finish_reason was cut off: an error, not an answer.
    """
    answer = AnswerText(on_partial, resp.status_code)
    finished = False
    for event in read_events(resp, timeout):
        if event.data.strip() == "[DONE]":
            finished = True
            break
        try:
            chunk = json.loads(event.data)
        except ValueError:
            raise OpenAIRequestError("bad_response", resp.status_code) from None
        if not isinstance(chunk, dict):
            continue
        if isinstance(chunk.get("error"), dict):
            code = chunk["error"].get("code") or chunk["error"].get("type")
            raise OpenAIRequestError("stream_error", resp.status_code, str(code) if code else None)
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict):
                delta = choice.get("delta")
                answer.add(delta.get("content") if isinstance(delta, dict) else None)
                finished = finished or bool(choice.get("finish_reason"))
    text = answer.text.strip()
    if not finished:
        raise OpenAIRequestError("connection", resp.status_code)
    if not text:
        raise OpenAIRequestError("bad_response", resp.status_code)
    return text


def image_data_url(path: str) -> str | None:
    """`data:<mime>;base64,...` for a local image, or None when missing, too big or not an image."""
    try:
        if os.path.getsize(path) > MAX_IMAGE_BYTES:
            logger.warning("[openai] image skipped: larger than %d bytes", MAX_IMAGE_BYTES)
            return None
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        logger.warning("[openai] image skipped: %s", type(exc).__name__)
        return None
    mime = sniff_image_mime(data) or mimetypes.guess_type(path)[0]
    if not mime or not mime.startswith("image/"):
        logger.warning("[openai] image skipped: unknown format")
        return None
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def sniff_image_mime(data: bytes) -> str | None:
    """The image MIME type from the file's first bytes, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, mime in _MAGIC_MIME:
        if data.startswith(magic):
            return mime
    return None


def read_turn(
    query: str, context: Context | None, forget: Callable[[str], None]
) -> tuple[str, str, list[str]] | Reply:
    """(session id, query, image paths) of a turn a chat bot asks its model about, or the Reply
    that answers it without a model: an unsupported type, a reset command (``forget`` is called
    with the session id), nothing said. Shared by the chat bots."""
    ctype = context.type if context is not None else ContextType.TEXT
    if ctype not in (None, ContextType.TEXT):
        return Reply(ReplyType.ERROR, f"暂不支持处理 {ctype} 类型的消息。")
    query = (query or "").strip()
    session_id = str(context.get("session_id") or DEFAULT_SESSION) if context else DEFAULT_SESSION
    if query in RESET_COMMANDS:
        forget(session_id)
        return Reply(ReplyType.INFO, "记忆已清除。")
    image_paths = turn_image_paths(context)
    if not query and not image_paths:
        return Reply(ReplyType.TEXT, "你好像什么都没说，请问有什么可以帮您？")
    return session_id, query, image_paths


def turn_image_paths(context: Context | None) -> list[str]:
    """The local image files of the turn (``context["image_paths"]``) that still exist."""
    if context is None:
        return []
    paths = context.get("image_paths") or []
    if not isinstance(paths, (list, tuple)):
        return []
    # A file that vanished (e.g. cleaned up) is skipped rather than failing the whole answer.
    return [p for p in paths if isinstance(p, str) and p and os.path.isfile(p)]


def _remembered_query(query: str, image_paths: list[str]) -> str:
    # Images are not kept in memory (size); a note keeps the conversation understandable.
    if not image_paths:
        return query
    return f"{query}\n[用户发送了 {len(image_paths)} 张图片]".strip()
