"""CoW 2.x's web console, reduced to a listener on ``web_port`` (upstream: all interfaces; here
127.0.0.1) that answers every GET with a small page."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from channel.channel import Channel
from common.log import logger
from config import conf

LOOPBACK = "127.0.0.1"


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"fake CoW web console"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
        return


class WebChannel(Channel):
    def __init__(self) -> None:
        self.server: ThreadingHTTPServer | None = None

    def startup(self) -> None:
        port = int(conf().get("web_port", 9899))
        self.server = ThreadingHTTPServer((LOOPBACK, port), _Page)
        logger.info(f"[WebChannel] Web console on http://{LOOPBACK}:{port}/")
        self.server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
