"""The emulator's HTTP server: stdlib ThreadingHTTPServer on loopback, routing by path prefix."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from sandbox.emulator import api_router, control_api
from sandbox.emulator.api_router import HttpAnswer
from sandbox.emulator.httpbase import QuietThreadingHTTPServer
from sandbox.emulator.models import ApiRequest
from sandbox.emulator.redact import redact_text

if TYPE_CHECKING:
    from sandbox.emulator.emulator import WeComEmulator

logger = logging.getLogger(__name__)
MAX_BODY = 25 * 1024 * 1024  # the largest upload (file, 20 MB) plus multipart overhead


class EmulatorHTTPServer(QuietThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emu: WeComEmulator) -> None:
        self.emu = emu
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, EmulatorRequestHandler)

    def close_all(self) -> None:
        """Stop listening and close kept-alive connections, so a stopped emulator really is gone."""
        self.shutdown()
        self.server_close()
        with self.connections_lock:
            connections = list(self.open_connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class EmulatorRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # idle keep-alive connections end, so their threads do not pile up
    server: EmulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)
        # Headers and body go out in separate writes; without NODELAY, Nagle + delayed ACK add ~40 ms.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.open_connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def log_message(self, fmt: str, *args: Any) -> None:
        logger.debug("emulator http: %s", redact_text(fmt % args))

    def _read_body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            return None
        return self.rfile.read(length) if length else b""

    def _dispatch(self, method: str) -> None:
        body = self._read_body()
        if body is None:
            self.close_connection = True
            self._send(HttpAnswer(413, "text/plain; charset=utf-8", b"request body too large"))
            return
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in self.headers.items()}
        emu = self.server.emu
        try:
            if parts.path.startswith("/cgi-bin/"):
                api = parts.path[len("/cgi-bin/") :].strip("/")
                answer = api_router.handle(emu, ApiRequest(method, api, query, body, headers))
            elif parts.path in ("", "/", "/sandbox") or parts.path.startswith("/sandbox/"):
                answer = control_api.handle(emu, method, parts.path, query, headers, body)
            else:
                answer = HttpAnswer(404, "text/plain; charset=utf-8", b"not found")
        except Exception:
            logger.exception("emulator handler failed for %s", parts.path)
            answer = HttpAnswer(500, "text/plain; charset=utf-8", b"emulator error")
        if answer.drop:
            self._drop()
            return
        self._send(answer)

    def _drop(self) -> None:
        """Close the connection without answering (fault injection)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, answer: HttpAnswer) -> None:
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for key, value in answer.headers.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def serve(host: str, port: int, emu: WeComEmulator) -> tuple[EmulatorHTTPServer, threading.Thread]:
    """Bind and serve in a daemon thread."""
    httpd = EmulatorHTTPServer((host, port), emu)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.name = "wecom-emulator-http"
    thread.start()
    return httpd, thread
