"""A bot for a Dify app (chatbot, agent or chatflow) through Dify's app API.

API reference: https://docs.dify.ai/en/guides/application-publishing/developing-with-apis
    POST /chat-messages (blocking or streaming), POST /files/upload, GET /parameters.
Dify keeps the conversation: this bot only remembers each customer's ``conversation_id`` (forgotten
after ``expires_in_seconds`` idle, like the OpenAI bot's memory) and passes the session id as
Dify's ``user``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from bridge.context import Context
from bridge.reply import Reply, ReplyType
from models.bot import Bot
from models.openai_chat_bot import MAX_IMAGE_BYTES, read_turn, sniff_image_mime
from models.openai_http import OpenAIHttpClient, OpenAIRequestError, chinese_error_message
from models.session_memory import CowSessions, SessionValues
from models.streaming import AnswerText, partial_callback, read_events

logger = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.dify.ai/v1"
# App types answered through /chat-messages ("workflow" apps use another API and are refused at start).
APP_TYPES = ("chatbot", "agent", "chatflow")
ANSWER_EVENTS = frozenset({"message", "agent_message"})
PARAMETERS_TTL = 300.0  # seconds an app's "accepts images" answer is trusted (operators change apps)


class DifyBot(Bot):
    """Answers TEXT contexts with a Dify app; the turn's images go to Dify as uploaded files."""

    def __init__(
        self,
        client: OpenAIHttpClient,
        *,
        app_type: str = "chatbot",
        stream: bool = False,
        expires_in_seconds: float = 3600.0,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if app_type not in APP_TYPES:
            raise ValueError(f"dify_app_type must be one of {', '.join(APP_TYPES)}")
        self.client = client
        self.app_type = app_type
        # Dify's agent apps answer in streaming mode only.
        self.streaming = stream or app_type == "agent"
        self.conversations = SessionValues(expires_in_seconds, max_sessions, clock)
        self.sessions = CowSessions(self.conversations)  # CoW's name: godcmd's #reset uses it
        self._clock = clock
        self._images: tuple[float, bool] | None = None  # (checked at, accepted)
        self._images_lock = threading.Lock()

    def reply(self, query: str, context: Context | None = None) -> Reply:
        turn = read_turn(query, context, self.conversations.clear)
        if isinstance(turn, Reply):
            return turn
        session_id, query, images = turn
        logger.debug("[dify] session=%s query=%s images=%d", session_id, query, len(images))
        try:
            answer = self._ask(session_id, query, images, context)
        except OpenAIRequestError as err:
            logger.warning("[dify] session=%s chat message failed: %s", session_id, err)
            return Reply(ReplyType.ERROR, chinese_error_message(err))
        logger.debug("[dify] session=%s answer=%s", session_id, answer)
        return Reply(ReplyType.TEXT, answer)

    def _ask(self, session_id: str, query: str, images: list[str], context: Context | None) -> str:
        files, note = self._files(session_id, images)
        text = "\n".join(part for part in (query or ("" if note else "请看这些图片。"), note) if part)
        conversation = self.conversations.get(session_id) or ""
        body: dict[str, Any] = {
            "inputs": {},
            "query": text,
            "response_mode": "streaming" if self.streaming else "blocking",
            "user": session_id,
            "conversation_id": conversation,
        }
        if files:
            body["files"] = files
        try:
            answer, conversation_id = self._send(body, context)
        except OpenAIRequestError as err:
            if not (conversation and err.status == 404):
                raise
            # Deleted in Dify (or unknown to a re-created app): the customer starts a new conversation.
            logger.info("[dify] session=%s: conversation gone (%s), starting a new one", session_id, err.code)
            self.conversations.clear(session_id)
            body["conversation_id"] = ""
            answer, conversation_id = self._send(body, context)
        if conversation_id:
            self.conversations.set(session_id, conversation_id)
        return answer

    def _send(self, body: dict[str, Any], context: Context | None) -> tuple[str, str]:
        """(answer, conversation_id) of one chat message; OpenAIRequestError on any failure."""
        if self.streaming:
            resp = self.client.post("chat-messages", json=body, stream=True)
            return _streamed(resp, self.client.timeout, partial_callback(context))
        resp = self.client.post("chat-messages", json=body)
        try:
            data = resp.json()
            answer, conversation_id = data["answer"], data.get("conversation_id") or ""
        except (ValueError, KeyError, TypeError):
            raise OpenAIRequestError("bad_response", resp.status_code) from None
        if not isinstance(answer, str) or not answer.strip():
            raise OpenAIRequestError("bad_response", resp.status_code)
        return answer.strip(), str(conversation_id)

    def _files(self, user: str, images: list[str]) -> tuple[list[dict[str, str]], str]:
        """Dify file objects for the images the app accepts, and a note for the model when some
        cannot be passed (the app takes no images, or an upload failed)."""
        if not images:
            return [], ""
        files: list[dict[str, str]] = []
        if self._accepts_images(user):
            for path in images:
                file_id = self._upload(user, path)
                if file_id:
                    files.append(
                        {"type": "image", "transfer_method": "local_file", "upload_file_id": file_id}
                    )
        missing = len(images) - len(files)
        return files, (f"[用户还发送了 {missing} 张图片，当前无法查看图片内容]" if missing else "")

    def _accepts_images(self, user: str) -> bool:
        with self._images_lock:
            if self._images is not None and self._clock() - self._images[0] < PARAMETERS_TTL:
                return self._images[1]
        try:
            data = self.client.get("parameters", params={"user": user}).json()
        except (OpenAIRequestError, ValueError) as exc:
            logger.warning("[dify] cannot read the app's parameters (%s); images not passed", exc)
            return False
        accepted = _image_upload_enabled(data)
        with self._images_lock:
            self._images = (self._clock(), accepted)
        return accepted

    def _upload(self, user: str, path: str) -> str | None:
        """POST /files/upload; the file id, or None (logged) when the image cannot be passed."""
        try:
            if os.path.getsize(path) > MAX_IMAGE_BYTES:
                logger.warning("[dify] image skipped: larger than %d bytes", MAX_IMAGE_BYTES)
                return None
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            logger.warning("[dify] image skipped: %s", type(exc).__name__)
            return None
        mime = sniff_image_mime(data) or "application/octet-stream"
        name = "image." + (mime.split("/", 1)[1] if mime.startswith("image/") else "bin")
        try:
            resp = self.client.post("files/upload", data={"user": user}, files={"file": (name, data, mime)})
            file_id = resp.json().get("id")
        except (OpenAIRequestError, ValueError, AttributeError) as exc:
            logger.warning("[dify] image upload failed: %s", exc)
            return None
        return file_id if isinstance(file_id, str) and file_id else None


def _image_upload_enabled(parameters: Any) -> bool:
    """Whether the app takes image files: ``file_upload.image.enabled`` (older Dify) or
    ``file_upload.enabled`` with "image" among ``allowed_file_types`` (newer)."""
    upload = parameters.get("file_upload") if isinstance(parameters, dict) else None
    if not isinstance(upload, dict):
        return False
    image = upload.get("image")
    if isinstance(image, dict) and image.get("enabled"):
        return True
    return bool(upload.get("enabled")) and "image" in (upload.get("allowed_file_types") or [])


def _streamed(
    resp: requests.Response, timeout: float, on_partial: Callable[[str], None] | None
) -> tuple[str, str]:
    """(answer, conversation_id) from Dify's event stream: ``message``/``agent_message`` add to the
    answer, ``message_replace`` replaces it, ``message_end`` ends it, ``error`` fails it."""
    answer = AnswerText(on_partial, resp.status_code)
    conversation_id, finished = "", False
    for event in read_events(resp, timeout):
        try:
            data = json.loads(event.data)
        except ValueError:
            raise OpenAIRequestError("bad_response", resp.status_code) from None
        if not isinstance(data, dict):
            continue
        kind = data.get("event")
        conversation_id = str(data.get("conversation_id") or conversation_id)
        if kind in ANSWER_EVENTS:
            answer.add(data.get("answer"))
        elif kind == "message_replace":
            answer.replace(data.get("answer"))
        elif kind == "error":
            status = data.get("status")
            code = data.get("code")
            raise OpenAIRequestError(
                "stream_error", status if isinstance(status, int) else None, str(code) if code else None
            )
        elif kind == "message_end":
            finished = True
            break
    text = answer.text.strip()
    if not finished:
        raise OpenAIRequestError("connection", resp.status_code)
    if not text:
        raise OpenAIRequestError("bad_response", resp.status_code)
    return text, conversation_id
