"""A fake OpenAI-compatible API on loopback, for tests, the sandbox and benchmarks.

Real HTTP (stdlib ThreadingHTTPServer): POST /v1/chat/completions (also "stream": true, SSE),
/v1/audio/transcriptions, /v1/audio/speech, GET /v1/models, plus a small control API for a server
run in a subprocess: GET /_fake/stats and POST /_fake/config {"latency", "fail_next", "fail_status",
"transcription_text"}.

    python -m sandbox.fake_openai --port 8199 --latency 1.0
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import signal
import struct
import subprocess
import tempfile
import threading
import time
import uuid
import wave
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from sandbox.emulator import multipart
from sandbox.emulator.httpbase import QuietThreadingHTTPServer

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 30 * 1024 * 1024
MAX_RECORDS = 1000  # recorded requests/uploads kept (oldest dropped)
MAX_SPEECH_SECONDS = 180.0
SPEECH_RATE = 16000

ReplyFn = Callable[[dict[str, Any]], str]


def default_reply(body: dict[str, Any]) -> str:
    """ "答：<last user text>", noting the images the last user message carried."""
    text, images = "", 0
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                text = content
            elif isinstance(content, list):
                text = "".join(p.get("text", "") for p in content if p.get("type") == "text")
                images = sum(1 for p in content if p.get("type") == "image_url")
            break
    return f"答：{text}" + (f"（收到 {images} 张图片）" if images else "")


class FakeOpenAIServer:
    """Start with `start()` (returns the base URL, e.g. "http://127.0.0.1:PORT/v1"), end with `stop()`."""

    def __init__(
        self,
        latency: float = 0.0,
        reply_fn: ReplyFn | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        transcription_text: str = "你好，这是一段语音",
        speech_seconds: float | None = None,
    ) -> None:
        self.latency = latency  # seconds slept by every API call; may be changed while running
        self.stream_chars_per_second: float | None = None  # pace of a streamed answer (None: at once)
        self.reply_fn: ReplyFn = reply_fn or default_reply
        self.transcription_text = transcription_text
        self.speech_seconds = speech_seconds  # None: derived from the text length
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._requests: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDS)
        self._uploads: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDS)
        self._speech: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDS)
        self._hits: deque[dict[str, str]] = deque(maxlen=MAX_RECORDS)
        self._fail_next = 0
        self._fail_status = 429
        self.calls = 0
        self.current_concurrency = 0
        self.peak_concurrency = 0
        self._httpd: QuietThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> str:
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        self._httpd = QuietThreadingHTTPServer((self._host, self._port), handler)
        self._httpd.daemon_threads = True
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="fake-openai", daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping for `latency`
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}/v1"

    # -- knobs and records -------------------------------------------------------------------
    def fail_next(self, count: int, status: int = 429) -> None:
        """The next `count` API calls answer `status` (e.g. 429 or 500) with an error body."""
        with self._lock:
            self._fail_next, self._fail_status = max(0, int(count)), int(status)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Bodies of chat completion requests, oldest first (the last MAX_RECORDS)."""
        with self._lock:
            return list(self._requests)

    @property
    def uploads(self) -> list[dict[str, Any]]:
        """Transcription uploads: {"model", "filename", "size", "data"}."""
        with self._lock:
            return list(self._uploads)

    @property
    def hits(self) -> list[dict[str, str]]:
        """Every API call's {"path", "authorization"}, oldest first: which base URL and key reached us."""
        with self._lock:
            return list(self._hits)

    @property
    def speech_requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._speech)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": self.calls,
                "current_concurrency": self.current_concurrency,
                "peak_concurrency": self.peak_concurrency,
                "latency": self.latency,
                "fail_next": self._fail_next,
            }

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._uploads.clear()
            self._speech.clear()
            self._hits.clear()
            self.calls = self.peak_concurrency = self._fail_next = 0

    # -- used by the handler -----------------------------------------------------------------
    def _enter_call(self) -> int | None:
        """Counts a call in; returns an HTTP status to fail it with, or None."""
        with self._lock:
            self.calls += 1
            self.current_concurrency += 1
            self.peak_concurrency = max(self.peak_concurrency, self.current_concurrency)
            if self._fail_next > 0:
                self._fail_next -= 1
                return self._fail_status
            return None

    def _leave_call(self) -> None:
        with self._lock:
            self.current_concurrency -= 1

    def _record(self, kind: str, item: dict[str, Any]) -> None:
        target = {"chat": self._requests, "upload": self._uploads, "speech": self._speech}[kind]
        with self._lock:
            target.append(item)

    def _apply_config(self, cfg: dict[str, Any]) -> None:
        if "latency" in cfg:
            self.latency = max(0.0, float(cfg["latency"]))
        if "transcription_text" in cfg:
            self.transcription_text = str(cfg["transcription_text"])
        if "fail_next" in cfg:
            self.fail_next(int(cfg["fail_next"]), int(cfg.get("fail_status", 429)))


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAIServer
    protocol_version = "HTTP/1.1"  # keep-alive, as real API servers do

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("fake-openai: %s", format % args)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/_fake/stats":
            self._json(200, self.fake.stats())
        elif path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]})
        else:
            self._error(404, "not found")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._error(413, "request too large")
            return
        raw = self.rfile.read(length) if length > 0 else b""
        if path == "/_fake/config":
            self.fake._apply_config(_loads(raw) or {})
            self._json(200, self.fake.stats())
            return
        routes = {
            "/v1/chat/completions": self._chat,
            "/v1/audio/transcriptions": self._transcribe,
            "/v1/audio/speech": self._speech,
        }
        # Providers mount the API under other prefixes (/compatible-mode/v1, /api/paas/v4, /api/v1...).
        route = routes.get(path) or next((r for p, r in routes.items() if path.endswith(p[3:])), None)
        with self.fake._lock:
            self.fake._hits.append({"path": path, "authorization": self.headers.get("Authorization", "")})
        if route is None:
            self._error(404, "not found")
            return
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            self._error(401, "missing bearer token", "invalid_api_key")
            return
        fail = self.fake._enter_call()
        self._in_call = True
        try:
            latency = self.fake.latency
            if latency > 0 and self.fake._stopping.wait(latency):
                self.close_connection = True  # stopping: answer nothing
                return
            if fail is not None:
                code = "rate_limit_exceeded" if fail == 429 else "server_error"
                self._error(fail, "injected failure", code)
            else:
                self._route_safely(route, raw)
        except OSError as exc:  # the client went away (e.g. it timed out first)
            logger.debug("fake-openai: client gone: %s", type(exc).__name__)
            self.close_connection = True
        finally:
            self._end_call()

    def _end_call(self) -> None:
        """The call is over once its answer starts to leave (before the client can see it and call
        again): counted out then, or at the latest when the handler returns."""
        if getattr(self, "_in_call", False):
            self._in_call = False
            self.fake._leave_call()

    def _route_safely(self, route: Callable[[bytes], None], raw: bytes) -> None:
        try:
            route(raw)
        except OSError:
            raise
        except Exception:  # a failing reply_fn answers 500, as a real server would
            logger.exception("fake-openai: handler failed")
            self._error(500, "internal error", "server_error")

    def _chat(self, raw: bytes) -> None:
        body = _loads(raw)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self._error(400, "messages is required")
            return
        self.fake._record("chat", body)
        answer = self.fake.reply_fn(body)
        # Rough counts (a token per 2 characters): real clients such as CoW's treat 0 completion
        # tokens as a failed answer.
        prompt = sum(len(str(m.get("content", ""))) for m in body["messages"] if isinstance(m, dict))
        usage = {"prompt_tokens": max(1, prompt // 2), "completion_tokens": max(1, len(answer) // 2)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if body.get("stream"):
            self._stream_chat(body, answer)
            return
        self._json(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", ""),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
                ],
                "usage": usage,
            },
        )

    def _stream_chat(self, body: dict[str, Any], answer: str) -> None:
        """The answer as chat.completion.chunk events, a few characters each, then [DONE]."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Connection", "close")  # no Content-Length: the end of the body is the close
        self.end_headers()
        self.close_connection = True
        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion.chunk"}
        base["model"] = body.get("model", "")
        pieces = [answer[i : i + 4] for i in range(0, len(answer), 4)]
        choices: list[dict[str, Any]] = [
            {"index": 0, "delta": {"content": piece}, "finish_reason": None} for piece in pieces
        ]
        choices.append({"index": 0, "delta": {}, "finish_reason": "stop"})
        pace = self.fake.stream_chars_per_second
        for choice in choices:
            chunk = json.dumps({**base, "choices": [choice]}, ensure_ascii=False)
            self.wfile.write(f"data: {chunk}\n\n".encode())
            self.wfile.flush()
            if pace:
                time.sleep(len(choice["delta"].get("content", "")) / pace)
        self._end_call()
        self.wfile.write(b"data: [DONE]\n\n")

    def _transcribe(self, raw: bytes) -> None:
        parts = multipart.parse(self.headers.get("Content-Type", ""), raw)
        upload = multipart.field(parts, "file")
        if upload is None or not upload.data:
            self._error(400, "file is required")
            return
        model = _text_field(parts, "model", "")
        record = {"model": model, "filename": upload.filename or "", "data": upload.data}
        self.fake._record("upload", {**record, "size": len(upload.data)})
        if _text_field(parts, "response_format", "json") == "text":
            self._send(200, self.fake.transcription_text.encode("utf-8"), "text/plain; charset=utf-8")
        else:
            self._json(200, {"text": self.fake.transcription_text})

    def _speech(self, raw: bytes) -> None:
        body = _loads(raw)
        if not isinstance(body, dict) or not str(body.get("input") or "").strip():
            self._error(400, "input is required")
            return
        fmt = str(body.get("response_format") or "mp3")
        if fmt not in ("wav", "mp3", "pcm"):
            self._error(400, f"unsupported response_format {fmt}")
            return
        self.fake._record("speech", body)
        seconds = self.fake.speech_seconds
        if seconds is None:
            seconds = min(MAX_SPEECH_SECONDS, max(0.5, 0.2 * len(str(body["input"]))))
        pcm = sine_pcm(seconds)
        if fmt == "pcm":
            self._send(200, pcm, "audio/pcm")
        elif fmt == "wav":
            self._send(200, pcm_to_wav(pcm), "audio/wav")
        else:
            self._send(200, wav_to_mp3(pcm_to_wav(pcm)), "audio/mpeg")

    # -- responses ---------------------------------------------------------------------------
    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"), "application/json")

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        error = {"message": message, "type": "invalid_request_error", "code": code}
        self._json(status, {"error": error})

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self._end_call()
        self.end_headers()
        self.wfile.write(data)


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def _text_field(parts: list[multipart.Part], name: str, default: str) -> str:
    part = multipart.field(parts, name)
    return default if part is None else part.data.decode("utf-8", "replace")


def sine_pcm(seconds: float, freq: float = 440.0, rate: int = SPEECH_RATE) -> bytes:
    """Mono 16-bit little-endian samples of a sine tone."""
    count = int(seconds * rate)
    step = 2 * math.pi * freq / rate
    return struct.pack(f"<{count}h", *(int(8000 * math.sin(i * step)) for i in range(count)))


def pcm_to_wav(pcm: bytes, rate: int = SPEECH_RATE) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


def wav_to_mp3(wav: bytes) -> bytes:
    """Encodes with the project's ffmpeg (the one with AMR-NB, which also has LAME)."""
    from voice.audio_convert import ffmpeg_exe

    with tempfile.TemporaryDirectory(prefix="fake-openai-") as tmp:
        src, dst = os.path.join(tmp, "in.wav"), os.path.join(tmp, "out.mp3")
        with open(src, "wb") as f:
            f.write(wav)
        cmd = [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-i", src, "-c:a", "libmp3lame", dst]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        with open(dst, "rb") as f:
            return f.read()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible API on loopback")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--transcription-text", default="你好，这是一段语音")
    args = parser.parse_args(argv)
    server = FakeOpenAIServer(
        latency=args.latency, host=args.host, port=args.port, transcription_text=args.transcription_text
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(f"FAKE_OPENAI_READY {server.start()}", flush=True)
    done.wait()
    server.stop()


if __name__ == "__main__":
    main()
