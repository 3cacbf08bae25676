"""The callback HTTP server: a web.py application (what CoW channels use) on cheroot's WSGI server.

cheroot is used directly (not ``app.run()``) so the thread count, the accept backlog and the bind
address are ours, the bound port is known (port 0 picks a free one, for tests), and ``stop()`` works.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import parse_qsl

import web
from cheroot import wsgi

from .callback import BAD_REQUEST, TOO_LARGE, CallbackHandler, Response

logger = logging.getLogger(__name__)

CALLBACK_PATH = "/wxkf"


def _query() -> dict[str, str]:
    # web.input() would also parse a POST body as a form; only the query string matters here.
    return dict(parse_qsl(web.ctx.env.get("QUERY_STRING", ""), keep_blank_values=True))


def _read_body(limit: int) -> bytes | None:
    """The request body, or None when it is larger than ``limit`` (read at most limit + 1 bytes)."""
    env = web.ctx.env
    length_text = env.get("CONTENT_LENGTH") or ""
    if length_text.strip().isdigit() and int(length_text) > limit:
        return None
    stream = env.get("wsgi.input")
    if stream is None:
        return b""
    want = int(length_text) if length_text.strip().isdigit() else limit + 1
    data: bytes = stream.read(min(want, limit + 1))
    return None if len(data) > limit else data


def _answer(response: Response) -> str:
    web.ctx.status = response.status_line
    web.header("Content-Type", "text/plain; charset=utf-8")
    return response.body


def make_app(handler: CallbackHandler) -> web.application:
    """The web.py application with the ``/wxkf`` and ``/wxkf/`` routes."""

    class WxKf:
        def GET(self) -> str:  # noqa: N802 - web.py dispatches on the method name
            try:
                return _answer(handler.handle_get(_query()))
            except Exception:
                logger.exception("callback verification failed unexpectedly")
                return _answer(BAD_REQUEST)

        def POST(self) -> str:  # noqa: N802
            try:
                body = _read_body(handler.max_body_bytes)
                if body is None:
                    return _answer(TOO_LARGE)
                return _answer(handler.handle_post(_query(), body))
            except Exception:
                logger.exception("callback failed unexpectedly")
                return _answer(Response(500, "internal error"))

    return web.application((f"{CALLBACK_PATH}/?", "WxKf"), {"WxKf": WxKf}, autoreload=False)


class CallbackServer:
    """Binds in ``serve()``; ``port`` is the bound port once ``ready`` is set."""

    def __init__(self, handler: CallbackHandler, host: str, port: int, threads: int, backlog: int) -> None:
        app = make_app(handler)
        self._server = wsgi.Server(
            (host, port),
            app.wsgifunc(),
            numthreads=max(1, threads),
            request_queue_size=max(1, backlog),
            server_name="wechatcom_kf",
        )
        self._server.shutdown_timeout = 2
        self.ready = threading.Event()
        self._stopped = threading.Event()

    @property
    def port(self) -> int:
        addr: Any = self._server.bind_addr
        return int(addr[1])

    def serve(self) -> None:
        """Bind and serve until ``stop()``; blocks."""
        if self._stopped.is_set():
            return
        self._server.prepare()
        if self._stopped.is_set():  # stop() raced with the bind
            self._server.stop()
            self.ready.set()
            return
        logger.info("callback server listening on port %d, path %s/", self.port, CALLBACK_PATH)
        self.ready.set()
        try:
            self._server.serve()
        finally:
            self.ready.set()

    def stop(self) -> None:
        self._stopped.set()
        if self.ready.is_set():
            self._server.stop()
        self.ready.set()
