"""A fake Dify app API on loopback (real HTTP, ephemeral port) for the Dify bot's tests.

POST /v1/chat-messages (blocking JSON or streaming SSE), POST /v1/files/upload (multipart),
GET /v1/parameters. Conversations are created on the first message and kept per id; an unknown
conversation_id answers 404 as Dify does. Knobs: ``fail_next``, ``error_event``, ``cut_stream``,
``images_enabled``, ``answer_fn``.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from sandbox.emulator import multipart
from sandbox.emulator.httpbase import QuietThreadingHTTPServer

API_KEY = "app-test-SECRET-dify-0123"


def default_answer(body: dict[str, Any], turn: int) -> str:
    files = len(body.get("files") or [])
    return f"Dify答{turn}：{body.get('query', '')}" + (f"（{files} 个文件）" if files else "")


class FakeDify:
    def __init__(self, answer_fn: Callable[[dict[str, Any], int], str] = default_answer) -> None:
        self.answer_fn = answer_fn
        self.requests: list[dict[str, Any]] = []  # chat-messages bodies
        self.uploads: list[dict[str, Any]] = []
        self.conversations: dict[str, int] = {}  # id -> turns so far
        self.images_enabled = True
        self.new_parameters_format = False
        self.fail_next: list[int] = []  # statuses answered before anything else, one per call
        self.error_event: dict[str, Any] | None = None  # sent instead of the answer when streaming
        self.cut_stream = False  # close the stream before message_end
        self.agent_events = False  # answer with agent_message events (agent apps)
        self.parameters_calls = 0
        self._lock = threading.Lock()
        self._httpd: QuietThreadingHTTPServer | None = None

    def __enter__(self) -> FakeDify:
        handler = type("_Bound", (_Handler,), {"fake": self})
        self._httpd = QuietThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def forget_conversations(self) -> None:
        with self._lock:
            self.conversations.clear()

    def _take_failure(self) -> int | None:
        with self._lock:
            return self.fail_next.pop(0) if self.fail_next else None

    def _turn(self, body: dict[str, Any]) -> tuple[str, int] | None:
        """(conversation id, turn number), or None for an unknown conversation_id."""
        with self._lock:
            self.requests.append(body)
            conversation = body.get("conversation_id") or ""
            if conversation and conversation not in self.conversations:
                return None
            conversation = conversation or f"conv-{uuid.uuid4().hex[:8]}"
            self.conversations[conversation] = self.conversations.get(conversation, 0) + 1
            return conversation, self.conversations[conversation]


class _Handler(BaseHTTPRequestHandler):
    fake: FakeDify
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:
        if not self._authorized():
            return
        if self.path.split("?", 1)[0] != "/v1/parameters":
            self._json(404, {"code": "not_found", "message": "not found", "status": 404})
            return
        self.fake.parameters_calls += 1
        enabled = self.fake.images_enabled
        if self.fake.new_parameters_format:
            upload = {"enabled": enabled, "allowed_file_types": ["image"], "number_limits": 3}
        else:
            upload = {"image": {"enabled": enabled, "number_limits": 3, "transfer_methods": ["local_file"]}}
        self._json(200, {"opening_statement": "", "file_upload": upload})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self._authorized():
            return
        failure = self.fake._take_failure()
        if failure is not None:
            self._json(failure, {"code": "injected", "message": "injected failure", "status": failure})
        elif self.path == "/v1/files/upload":
            self._upload(raw)
        elif self.path == "/v1/chat-messages":
            self._chat(json.loads(raw))
        else:
            self._json(404, {"code": "not_found", "message": "not found", "status": 404})

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {API_KEY}":
            return True
        self._json(401, {"code": "unauthorized", "message": "Access token is invalid", "status": 401})
        return False

    def _upload(self, raw: bytes) -> None:
        parts = multipart.parse(self.headers.get("Content-Type", ""), raw)
        upload, user = multipart.field(parts, "file"), multipart.field(parts, "user")
        if upload is None or user is None:
            self._json(
                400, {"code": "no_file_uploaded", "message": "Please upload your file.", "status": 400}
            )
            return
        file_id = f"file-{uuid.uuid4().hex[:8]}"
        self.fake.uploads.append({"id": file_id, "user": user.data.decode(), "size": len(upload.data)})
        self._json(201, {"id": file_id, "name": upload.filename, "size": len(upload.data)})

    def _chat(self, body: dict[str, Any]) -> None:
        turn = self.fake._turn(body)
        if turn is None:
            self._json(404, {"code": "not_found", "message": "Conversation Not Exists.", "status": 404})
            return
        conversation, number = turn
        answer = self.fake.answer_fn(body, number)
        if body.get("response_mode") == "streaming":
            self._stream(conversation, answer)
            return
        message = {"event": "message", "answer": answer, "conversation_id": conversation}
        self._json(200, {**message, "message_id": uuid.uuid4().hex, "mode": "chat", "metadata": {}})

    def _stream(self, conversation: str, answer: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        kind = "agent_message" if self.fake.agent_events else "message"
        events: list[dict[str, Any]] = [{"event": "ping"}]
        if self.fake.error_event is not None:
            events.append({"event": "error", **self.fake.error_event})
        else:
            events += [{"event": kind, "answer": answer[i : i + 3]} for i in range(0, len(answer), 3)]
            if not self.fake.cut_stream:
                events.append({"event": "message_end", "metadata": {"usage": {}}})
        for event in events:
            line = json.dumps({**event, "conversation_id": conversation}, ensure_ascii=False)
            self.wfile.write(f"data: {line}\r\n\r\n".encode())
            self.wfile.flush()

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
