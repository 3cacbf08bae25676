"""The callback HTTP server: one asyncio event-loop thread serving ``/wxkf`` and ``/wxkf/``.

Why one loop and not web.py on cheroot (what CoW channels use): this port faces the internet, and
cheroot gives each connection a worker thread for as long as it is open. Measured 2026-12-01 with 32
threads: 40 slow connections (one byte every 2 s) left 0 of 3 legitimate callbacks answered; this
asyncio edge, where a connection costs a few KB and no thread, held 1,000 such connections and answered
119 of 119. (A second, smaller gain: no thread hand-off per request, see ``python -m bench --only ack``.)

Why h11 for the HTTP/1.1 wire format: this port faces the internet, and framing (Content-Length,
chunked bodies, keep-alive, pipelining, ``Expect: 100-continue``) is where hand-written parsers grow
request-smuggling and edge-case bugs; h11 is a maintained, sans-I/O state machine that fits the loop.
On top of it we refuse what WeCom never sends (both Content-Length and Transfer-Encoding, HTTP
versions other than 1.0/1.1, non-origin targets) and bound everything: head size, body size (413,
then the rest of the body is read and dropped up to a limit so the client sees the answer),
connections, idle time.
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

import h11

from .callback import BAD_REQUEST, TOO_LARGE, CallbackHandler, Response

logger = logging.getLogger(__name__)

CALLBACK_PATH = "/wxkf"
_PATHS = frozenset({CALLBACK_PATH, CALLBACK_PATH + "/"})
MAX_HEAD_BYTES = 16 * 1024  # request line and headers, complete or not
MAX_HEADERS = 64
MAX_QUERY_FIELDS = 32
MAX_CONNECTIONS = 1024
IDLE_TIMEOUT_SECONDS = 30.0  # a connection with no bytes for this long is closed (idle or slow)
DISCARD_LIMIT_BYTES = 1024 * 1024  # read and drop at most this much of a refused body, then close
SWEEP_SECONDS = 1.0

NOT_FOUND = Response(404, "not found")
METHOD_NOT_ALLOWED = Response(405, "method not allowed")
INTERNAL_ERROR = Response(500, "internal error")
_CONTINUE = h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
_VERSIONS = (b"1.1", b"1.0")


class _HttpError(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


_date_cache: tuple[int, bytes] = (0, b"")


def _http_date() -> bytes:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode("ascii"))
    return _date_cache[1]


def _headers(response: Response, body: bytes, close: bool) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"Content-Type", b"text/plain; charset=utf-8"),
        (b"Content-Length", str(len(body)).encode("ascii")),
        (b"Date", _http_date()),
    ]
    if response.status == 405:
        headers.append((b"Allow", b"GET, POST"))
    if close:
        headers.append((b"Connection", b"close"))
    return headers


def _check_head(request: h11.Request, max_body: int) -> None:
    """Refuse (``_HttpError``) what h11 accepts but WeCom never sends, and bodies declared too large."""
    names = [name for name, _ in request.headers]
    size = len(request.target) + sum(len(name) + len(value) + 4 for name, value in request.headers)
    if request.http_version not in _VERSIONS or not request.target.startswith(b"/"):
        raise _HttpError(BAD_REQUEST)
    if size > MAX_HEAD_BYTES or len(names) > MAX_HEADERS:
        raise _HttpError(BAD_REQUEST)  # h11 bounds only incomplete heads; this bounds complete ones
    if b"transfer-encoding" in names and b"content-length" in names:
        raise _HttpError(BAD_REQUEST)  # RFC 9112 lets TE win; both at once is a smuggling probe here
    for name, value in request.headers:
        if name == b"content-length" and int(value) > max_body:  # h11 validated the digits
            raise _HttpError(TOO_LARGE)


class _Connection(asyncio.Protocol):
    """One client connection: requests are answered in order, each as soon as it is complete."""

    def __init__(self, server: CallbackServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._request: h11.Request | None = None
        self._body: list[bytes] = []
        self._size = 0
        self._discard: int | None = None  # bytes of a refused body still to drop before closing
        self._paused = False
        self.last_active = time.monotonic()

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        if not self._server.admit(self):
            transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.forget(self)
        self._body.clear()

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
        self._h11.receive_data(data)
        self._process()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _process(self) -> None:
        transport = self._transport
        try:
            while transport is not None and not self._paused and not transport.is_closing():
                event = self._h11.next_event()
                if event is h11.NEED_DATA:
                    return
                self._on_event(event)
        except h11.RemoteProtocolError as exc:
            logger.debug("malformed HTTP from a callback client: %s", exc)
            self._refuse(BAD_REQUEST)
        except _HttpError as exc:
            self._refuse(exc.response)
        except Exception:
            logger.exception("callback connection failed unexpectedly")
            self._refuse(INTERNAL_ERROR)

    def _on_event(self, event: Any) -> None:
        if isinstance(event, h11.Request):
            self._request, self._body, self._size = event, [], 0
            _check_head(event, self._server.max_body_bytes)
            if self._h11.they_are_waiting_for_100_continue:
                self._write(self._h11.send(_CONTINUE))
        elif isinstance(event, h11.Data):
            self._size += len(event.data)
            if self._discard is not None:
                self._drop(len(event.data))
            elif self._size > self._server.max_body_bytes:
                raise _HttpError(TOO_LARGE)
            else:
                self._body.append(event.data)
        elif isinstance(event, h11.EndOfMessage) and self._discard is None:
            request, self._request = self._request, None
            assert request is not None
            body, self._body = b"".join(self._body), []
            self._answer(self._server.respond(request, body))
        else:  # ConnectionClosed, the end of a dropped body, or PAUSED after "Connection: close"
            self.close()

    def _answer(self, response: Response) -> None:
        body = response.body.encode("utf-8")
        self._send(response, body, close=False)
        if self._h11.our_state is h11.MUST_CLOSE:  # the client asked to close, or HTTP/1.0
            self.close()
        else:
            self._h11.start_next_cycle()  # pipelined requests already buffered are read next

    def _send(self, response: Response, body: bytes, close: bool) -> None:
        head = h11.Response(
            status_code=response.status,
            headers=_headers(response, body, close),
            reason=response.reason.encode("ascii"),
        )
        send = self._h11.send
        self._write(send(head) + send(h11.Data(data=body)) + send(h11.EndOfMessage()))

    def _write(self, data: bytes | None) -> None:
        if data and self._transport is not None:
            self._transport.write(data)

    def _refuse(self, response: Response) -> None:
        """Answer and close. A refused body is read and dropped first (bounded), so the client,
        still sending, is not reset before it reads the answer."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        try:
            self._send(response, response.body.encode("utf-8"), close=True)
        except h11.LocalProtocolError:  # an answer was already under way: nothing more to say
            self.close()
            return
        if response.status != TOO_LARGE.status or self._h11.their_state is not h11.SEND_BODY:
            self.close()
            return
        self._body, self._discard = [], DISCARD_LIMIT_BYTES
        self._process()  # what h11 already holds of the body

    def _drop(self, size: int) -> None:
        assert self._discard is not None
        self._discard -= size
        if self._discard <= 0:
            self.close()


class CallbackServer:
    """Binds in ``serve()``; ``port`` is the bound port once ``ready`` is set.

    One loop thread answers every callback; the work behind it runs on the puller's threads.
    """

    def __init__(self, handler: CallbackHandler, host: str, port: int, backlog: int) -> None:
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

    def respond(self, request: h11.Request, body: bytes) -> Response:
        path, _, query_string = request.target.decode("latin-1").partition("?")
        if path not in _PATHS:
            return NOT_FOUND
        if request.method not in (b"GET", b"POST"):
            return METHOD_NOT_ALLOWED
        try:
            query = dict(parse_qsl(query_string, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS))
        except ValueError:
            return BAD_REQUEST
        try:
            if request.method == b"GET":
                return self._handler.handle_get(query)
            return self._handler.handle_post(query, body)
        except Exception:
            logger.exception("callback failed unexpectedly")
            return INTERNAL_ERROR


def _resolve(signal: asyncio.Future[None]) -> None:
    if not signal.done():
        signal.set_result(None)
