"""The callback HTTP server: one asyncio event-loop thread serving ``/wxkf`` and ``/wxkf/``.

Why not web.py on cheroot (what CoW channels use): answering a callback takes about 20 µs of our own
work (signature, AES, a few XML fields, ``schedule``), but web.py + cheroot spent 0.6 ms per request
and handed each connection from a selector thread to one of N worker threads through the GIL; with 50
callbacks in flight the p99 was 130 ms. One loop thread with a strict, minimal HTTP/1.1 reader answers
in the order requests arrive, with no thread hand-offs. Only what WeCom (or a proxy in front) sends is
accepted: origin-form targets, ``Content-Length`` or chunked bodies, keep-alive, pipelining,
``Expect: 100-continue``. Everything is bounded: head size, body size, connections, idle time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl

from .callback import BAD_REQUEST, TOO_LARGE, CallbackHandler, Response

logger = logging.getLogger(__name__)

CALLBACK_PATH = "/wxkf"
_PATHS = frozenset({CALLBACK_PATH, CALLBACK_PATH + "/"})
MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 64
MAX_QUERY_FIELDS = 32
MAX_CONNECTIONS = 1024
IDLE_TIMEOUT_SECONDS = 30.0  # a connection with no bytes for this long is closed (idle or slow)
DISCARD_LIMIT_BYTES = 1024 * 1024  # read and drop at most this much of a refused body, then close
SWEEP_SECONDS = 1.0

NOT_FOUND = Response(404, "not found")
METHOD_NOT_ALLOWED = Response(405, "method not allowed")
INTERNAL_ERROR = Response(500, "internal error")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _HttpError(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class _Head:
    """A parsed request head; ``length`` is None for a chunked body."""

    def __init__(self, raw: bytes) -> None:
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0") or not parts[1].startswith("/"):
            raise _HttpError(BAD_REQUEST)
        self.method, target, version = parts
        self.path, _, self.query = target.partition("?")
        if len(lines) > MAX_HEADERS + 1:
            raise _HttpError(BAD_REQUEST)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip() or name.lower() in headers:
                raise _HttpError(BAD_REQUEST)  # also refuses obs-fold and repeated headers
            headers[name.lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.1":
            self.keep_alive = "close" not in connection
        else:
            self.keep_alive = "keep-alive" in connection
        self.expect_continue = headers.get("expect", "").lower() == "100-continue"
        self.length: int | None = self._body_length(headers)

    @staticmethod
    def _body_length(headers: dict[str, str]) -> int | None:
        coding = headers.get("transfer-encoding")
        length = headers.get("content-length")
        if coding is not None:
            # Both headers, or a coding other than plain chunked: a smuggling attempt or not WeCom.
            if length is not None or coding.lower() != "chunked":
                raise _HttpError(BAD_REQUEST)
            return None
        if length is None:
            return 0
        if not length.isdigit() or len(length) > 12:
            raise _HttpError(BAD_REQUEST)
        return int(length)


def _dechunk(buf: bytearray, limit: int) -> tuple[bytes, int] | None:
    """``(body, bytes used)`` of a complete chunked body at the start of ``buf``, None if incomplete.

    Raises _HttpError: 400 for bad framing, 413 when the body is larger than ``limit``.
    """
    pos, size = 0, 0
    parts: list[bytes] = []
    while True:
        eol = buf.find(b"\r\n", pos, pos + 1024)
        if eol < 0:
            if len(buf) - pos > 1024:
                raise _HttpError(BAD_REQUEST)
            return None
        try:
            chunk = int(bytes(buf[pos:eol]).split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _HttpError(BAD_REQUEST) from None
        if chunk < 0:
            raise _HttpError(BAD_REQUEST)
        size += chunk
        if size > limit:
            raise _HttpError(TOO_LARGE)
        if chunk == 0:
            end = buf.find(b"\r\n\r\n", eol)  # optional trailers, then the blank line
            if end < 0:
                if len(buf) - eol > MAX_HEAD_BYTES:
                    raise _HttpError(BAD_REQUEST)
                return None
            return b"".join(parts), end + 4
        start = eol + 2
        if len(buf) < start + chunk + 2:
            return None
        if buf[start + chunk : start + chunk + 2] != b"\r\n":
            raise _HttpError(BAD_REQUEST)
        parts.append(bytes(buf[start : start + chunk]))
        pos = start + chunk + 2


_date_cache: tuple[int, bytes] = (0, b"")


def _http_date() -> bytes:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode("ascii"))
    return _date_cache[1]


def _encode(response: Response, keep_alive: bool) -> bytes:
    body = response.body.encode("utf-8")
    head = (
        f"HTTP/1.1 {response.status_line}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
    ).encode("ascii")
    extra = b"Connection: close\r\n" if not keep_alive else b""
    if response.status == 405:
        extra += b"Allow: GET, POST\r\n"
    return head + b"Date: " + _http_date() + b"\r\n" + extra + b"\r\n" + body


class _Connection(asyncio.Protocol):
    """One client connection: requests are answered in order, each as soon as it is complete."""

    def __init__(self, server: CallbackServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._head: _Head | None = None
        self._discard: int | None = None  # bytes of a refused body still to drop before closing
        self._paused = False
        self.last_active = time.monotonic()

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        if not self._server.admit(self):
            transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.forget(self)
        self._buf.clear()

    def pause_writing(self) -> None:
        # The client does not read its answers: stop reading its requests until it does.
        self._paused = True
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()
            self._process()

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        if self._discard is not None:
            self._drop(data)
            return
        self._buf += data
        self._process()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _process(self) -> None:
        transport = self._transport
        try:
            while transport is not None and not self._paused and not transport.is_closing():
                body = self._next_body()
                if body is None:
                    return
                head, self._head = self._head, None
                assert head is not None
                transport.write(_encode(self._server.respond(head, body), head.keep_alive))
                if not head.keep_alive:
                    transport.close()
        except _HttpError as exc:
            self._refuse(exc.response)
        except Exception:
            logger.exception("callback connection failed unexpectedly")
            self._refuse(INTERNAL_ERROR)

    def _next_body(self) -> bytes | None:
        """The body of the next complete request (its head in ``_head``), None while incomplete."""
        if self._head is None:
            end = self._buf.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES + 4)
            if end < 0:
                if len(self._buf) > MAX_HEAD_BYTES:
                    raise _HttpError(BAD_REQUEST)
                return None
            head = _Head(bytes(self._buf[:end]))
            del self._buf[: end + 4]
            self._head = head
            if head.length is not None and head.length > self._server.max_body_bytes:
                raise _HttpError(TOO_LARGE)
            if head.expect_continue and head.length != 0 and self._transport is not None:
                self._transport.write(_CONTINUE)
        length = self._head.length
        if length is None:
            taken = _dechunk(self._buf, self._server.max_body_bytes)
            if taken is None:
                return None
            body, used = taken
            del self._buf[:used]
            return body
        if len(self._buf) < length:
            return None
        body = bytes(self._buf[:length])
        del self._buf[:length]
        return body

    def _refuse(self, response: Response) -> None:
        """Answer and close. A refused body is read and dropped first (bounded), so the client,
        still sending, is not reset before it reads the answer."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(_encode(response, keep_alive=False))
        head = self._head
        if response.status != TOO_LARGE.status or head is None:
            transport.close()
            return
        self._discard = DISCARD_LIMIT_BYTES if head.length is None else min(head.length, DISCARD_LIMIT_BYTES)
        data, self._buf = bytes(self._buf), bytearray()
        self._drop(data)

    def _drop(self, data: bytes) -> None:
        assert self._discard is not None
        self._discard -= len(data)
        chunked_end = self._head is not None and self._head.length is None and data.endswith(b"0\r\n\r\n")
        if (self._discard <= 0 or chunked_end) and self._transport is not None:
            self._transport.close()


class CallbackServer:
    """Binds in ``serve()``; ``port`` is the bound port once ``ready`` is set.

    ``threads`` is accepted for the ``wechatcom_kf_http_threads`` setting and not needed: the one
    loop thread answers every callback (the work behind it runs on the puller's threads).
    """

    def __init__(self, handler: CallbackHandler, host: str, port: int, threads: int, backlog: int) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._backlog = max(1, backlog)
        self.max_body_bytes = handler.max_body_bytes
        self.ready = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_signal: asyncio.Future[None] | None = None
        self._connections: set[_Connection] = set()
        self._refused_connections = 0

    @property
    def port(self) -> int:
        return self._port

    def serve(self) -> None:
        """Bind and serve until ``stop()``; blocks."""
        if self._stopped.is_set():
            self.ready.set()
            return
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve(loop))
        finally:
            with self._lock:
                self._loop = None
            loop.close()
            self.ready.set()

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        server = await loop.create_server(
            lambda: _Connection(self), self._host, self._port, backlog=self._backlog, reuse_address=True
        )
        self._port = int(server.sockets[0].getsockname()[1])
        stop_signal: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._loop, self._stop_signal = loop, stop_signal
        if not self._stopped.is_set():  # else stop() raced with the bind
            logger.info("callback server listening on port %d, path %s/", self._port, CALLBACK_PATH)
            self.ready.set()
            sweeper = loop.create_task(self._sweep())
            await stop_signal
            sweeper.cancel()
        server.close()
        for conn in list(self._connections):
            conn.close()
        await server.wait_closed()

    async def _sweep(self) -> None:
        # One timer for every connection, instead of one per connection and request.
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            horizon = time.monotonic() - IDLE_TIMEOUT_SECONDS
            for conn in [c for c in self._connections if c.last_active < horizon]:
                conn.close()

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            loop, signal = self._loop, self._stop_signal
        if loop is not None and signal is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(_resolve, signal)
        self.ready.set()

    # --- called on the loop thread by connections --------------------------------------------------

    def admit(self, conn: _Connection) -> bool:
        if len(self._connections) >= MAX_CONNECTIONS:
            self._refused_connections += 1
            if self._refused_connections in (1, 100, 10_000):
                logger.warning("callback server: %d connection(s) refused over the limit", MAX_CONNECTIONS)
            return False
        self._connections.add(conn)
        return True

    def forget(self, conn: _Connection) -> None:
        self._connections.discard(conn)

    def respond(self, head: _Head, body: bytes) -> Response:
        if head.path not in _PATHS:
            return NOT_FOUND
        if head.method not in ("GET", "POST"):
            return METHOD_NOT_ALLOWED
        try:
            query = dict(parse_qsl(head.query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS))
        except ValueError:
            return BAD_REQUEST
        try:
            if head.method == "GET":
                return self._handler.handle_get(query)
            return self._handler.handle_post(query, body)
        except Exception:
            logger.exception("callback failed unexpectedly")
            return INTERNAL_ERROR


def _resolve(signal: asyncio.Future[None]) -> None:
    if not signal.done():
        signal.set_result(None)
