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
then the rest of the body is read and dropped up to a limit so the client sees the answer), and what
``EdgeLimits`` bounds (deadlines per request phase, connections in all and per address, request rate
per address; see limits.py). Every refusal is counted by kind and logged once a minute (Refusals).

``/healthz`` (the loop answers) and ``/readyz`` (the service behind can take work) answer GET and HEAD
for load balancers, from cached state only: an outsider cannot make them do I/O, and they pass the same
gate (allowlist, per-address limits) as callbacks. Metrics are never served on this port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl

import h11

from .admission import Gate
from .callback import BAD_REQUEST, TOO_LARGE, CallbackHandler, Response
from .limits import UNKNOWN_ADDRESS, EdgeLimits, peer_address
from .refusals import Refusals
from .wire import (
    CONTINUE,
    INTERNAL_ERROR,
    MAX_HEAD_BYTES,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    REASONS,
    HttpError,
    answer_headers,
    check_head,
)

logger = logging.getLogger(__name__)

CALLBACK_PATH = "/wxkf"
_PATHS = frozenset({CALLBACK_PATH, CALLBACK_PATH + "/"})
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
_PROBE_PATHS = frozenset({HEALTH_PATH, READY_PATH})
_PROBE_METHODS = (b"GET", b"HEAD")
MAX_QUERY_FIELDS = 32
DISCARD_LIMIT_BYTES = 1024 * 1024  # read and drop at most this much of a refused body, then close
DEFAULT_LIMITS = EdgeLimits()
# Process-wide ceilings from before EdgeLimits; the lower of ceiling and limit applies. Read at every
# use, so an embedder (or a test) can lower them on a running server.
MAX_CONNECTIONS = 65_536
IDLE_TIMEOUT_SECONDS = 30.0  # silence, in any phase, that ends a connection before its deadline
SWEEP_SECONDS = 1.0  # at most; shorter when a limit is shorter, so deadlines are kept to a quarter

_METHODS = (b"GET", b"HEAD", b"POST")
HEAD_DEADLINE = "head deadline"
BODY_DEADLINE = "body deadline"


@runtime_checkable
class ReportsReadiness(Protocol):
    """A handler that knows whether the service behind it can take work (``/readyz``); cached state."""

    def not_ready_reason(self) -> str | None: ...


class _ProbeAnswer(Response):
    @property
    def reason(self) -> str:
        return "Service Unavailable" if self.status == 503 else super().reason


ALIVE = _ProbeAnswer(200, "ok")
READY = _ProbeAnswer(200, "ready")


class _Connection(asyncio.Protocol):
    """One client connection: requests are answered in order, each as soon as it is complete.

    ``deadline`` is when the sweep ends the connection and ``late`` the refusal it counts then (None:
    a kept-alive connection that stayed idle, which is no refusal). Both are set when a phase starts
    and never moved by the bytes that arrive within it.
    """

    def __init__(self, server: CallbackServer) -> None:
        self._server = server
        self._limits = server.limits
        self._transport: asyncio.Transport | None = None
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._request: h11.Request | None = None
        self._head_only = False  # the request being answered is a HEAD: its answer carries no body
        self._body: list[bytes] = []
        self._size = 0
        self._discard: int | None = None  # bytes of a refused body still to drop before closing
        self._paused = False
        self._between = False  # kept alive, waiting for the next request's first byte
        self.address = UNKNOWN_ADDRESS
        self.proxied = False
        self.last_active = time.monotonic()
        self.deadline = self.last_active + self._limits.head_deadline_seconds  # from the accept
        self.late: str | None = HEAD_DEADLINE

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        self.address = peer_address(transport.get_extra_info("peername"))
        self.proxied = self._limits.trusts(self.address)
        if not self._server.admit(self):
            transport.abort()  # before a byte is read: nothing is parsed for a refused address

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
        if self._between:
            self._phase(HEAD_DEADLINE, self._limits.head_deadline_seconds)
        self._h11.receive_data(data)
        self._process()

    def close(self) -> None:
        """Close after what is written; a client that never reads it is aborted when idle ends."""
        self._phase(None, self._limits.idle_seconds)
        if self._transport is not None:
            self._transport.close()

    def expire(self) -> None:
        # abort, not close: close waits for the client to read, and a slot must be freed now.
        if self.late is not None:
            self._server.refusals.refuse(self.late)
        if self._transport is not None:
            self._transport.abort()

    def _phase(self, late: str | None, seconds: float) -> None:
        self._between = False
        self.late, self.deadline = late, time.monotonic() + seconds

    def _process(self) -> None:
        transport = self._transport
        try:
            while transport is not None and not self._paused and not transport.is_closing():
                event = self._h11.next_event()
                if event is h11.NEED_DATA:
                    return
                self._on_event(event)
        except h11.RemoteProtocolError as exc:
            # h11's text quotes the outsider's bytes ("illegal request line: bytearray(b'...')"): only
            # the part before the quote is logged, as the XML guard logs none of an outsider's text.
            self._server.refusals.refuse("malformed request", str(exc).split(":", 1)[0][:60])
            self._refuse(BAD_REQUEST)
        except HttpError as exc:
            self._server.refusals.refuse(exc.kind, exc.detail)
            self._refuse(exc.response)
        except h11.LocalProtocolError as exc:  # what the client sent leaves no valid answer to send
            self._server.refusals.refuse("unanswerable request", str(exc)[:80], logging.WARNING)
            self.close()
        except Exception:
            logger.exception("callback connection failed unexpectedly")
            self._refuse(INTERNAL_ERROR)

    def _on_event(self, event: Any) -> None:
        if isinstance(event, h11.Request):
            self._phase(BODY_DEADLINE, self._limits.body_deadline_seconds)
            self._request, self._body, self._size = event, [], 0
            self._head_only = event.method == b"HEAD"
            self._server.admit_request(self, event)
            check_head(event, self._server.max_body_bytes)
            if self._h11.they_are_waiting_for_100_continue:
                self._write(self._h11.send(CONTINUE))
        elif isinstance(event, h11.Data):
            self._size += len(event.data)
            if self._discard is not None:
                self._drop(len(event.data))
            elif self._size > self._server.max_body_bytes:
                raise HttpError(TOO_LARGE, "body too large")
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
        self._send(response, close=False)
        if self._h11.our_state is h11.MUST_CLOSE:  # the client asked to close, or HTTP/1.0
            self.close()
            return
        self._h11.start_next_cycle()  # pipelined requests already buffered are read next
        self._head_only = False
        if self._h11.trailing_data[0]:
            self._phase(HEAD_DEADLINE, self._limits.head_deadline_seconds)  # the next head has begun
        else:
            self._phase(None, self._limits.idle_seconds)
            self._between = True

    def _send(self, response: Response, close: bool) -> None:
        body = response.body.encode("utf-8")
        head = h11.Response(
            status_code=response.status,
            headers=answer_headers(response, body, close),  # for HEAD too: the Content-Length GET would have
            reason=REASONS.get(response.status, response.reason).encode("ascii"),
        )
        send = self._h11.send
        data = send(head) or b""
        if not self._head_only:  # h11 frames an answer to HEAD as bodiless: any Data would be an error
            data += send(h11.Data(data=body)) or b""
        data += send(h11.EndOfMessage()) or b""
        self._server.answered(response.status)
        self._write(data)

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
            self._send(response, close=True)
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
    ``allow(address)`` (optional, e.g. WeCom's callback IPs) runs on the loop for every connection
    and, behind a trusted proxy, every request: it must be a quick lookup.
    """

    def __init__(
        self,
        handler: CallbackHandler,
        host: str,
        port: int,
        backlog: int,
        *,
        limits: EdgeLimits = DEFAULT_LIMITS,
        allow: Callable[[str], bool] | None = None,
        refusals: Refusals | None = None,
    ) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._backlog = max(1, backlog)
        self.max_body_bytes = handler.max_body_bytes
        self.limits = limits
        self.refusals = refusals if refusals is not None else Refusals(logger)
        self._gate = Gate(limits, allow, self.refusals)
        self._readiness = handler.not_ready_reason if isinstance(handler, ReportsReadiness) else None
        self._answered: Counter[int] = Counter()
        self.ready = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_signal: asyncio.Future[None] | None = None
        self._connections: set[_Connection] = set()

    @property
    def port(self) -> int:
        return self._port

    def metrics(self) -> dict[str, Any]:
        """Counters for monitoring; safe to call from any thread."""
        with self._lock:
            answered = dict(self._answered)
        return {
            "connections_open": len(self._connections),
            "addresses_open": self._gate.addresses_open,
            "refused": self.refusals.snapshot(),
            "answered": answered,  # by HTTP status
        }

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
            await asyncio.sleep(min(SWEEP_SECONDS, max(0.01, self.limits.shortest_deadline / 4)))
            now = time.monotonic()
            silent = now - IDLE_TIMEOUT_SECONDS
            for conn in [c for c in self._connections if c.deadline <= now or c.last_active <= silent]:
                conn.expire()
            self._gate.prune(now)

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
        """At ``connection_made``: the total cap, then the gate (allowlist, the address's cap)."""
        limit = min(self.limits.max_connections, MAX_CONNECTIONS)
        if len(self._connections) >= limit:
            self.refusals.refuse("connection over the limit", f"{limit} open", logging.WARNING)
            return False
        if not self._gate.connect(conn.address, conn.proxied):
            return False
        self._connections.add(conn)
        return True

    def admit_request(self, conn: _Connection, request: h11.Request) -> None:
        self._gate.request(conn.address, conn.proxied, request.headers, time.monotonic())

    def forget(self, conn: _Connection) -> None:
        if conn in self._connections:  # refused connections were never counted
            self._connections.discard(conn)
            self._gate.disconnect(conn.address)

    def answered(self, status: int) -> None:
        with self._lock:
            self._answered[status] += 1

    def respond(self, request: h11.Request, body: bytes) -> Response:
        path, _, query_string = request.target.decode("latin-1").partition("?")
        if path in _PROBE_PATHS:
            return self._probe(path, request.method)
        if path not in _PATHS:
            self.refusals.refuse("unknown path")
            return NOT_FOUND
        if request.method not in _METHODS:
            self.refusals.refuse("method not allowed")
            return METHOD_NOT_ALLOWED
        try:
            query = dict(parse_qsl(query_string, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS))
        except ValueError:
            self.refusals.refuse("malformed request", "query string")
            return BAD_REQUEST
        try:
            if request.method == b"POST":
                return self._handler.handle_post(query, body)
            return self._handler.handle_get(query)  # HEAD too: the same status, the body left out
        except Exception:
            logger.exception("callback failed unexpectedly")
            return INTERNAL_ERROR

    def _probe(self, path: str, method: bytes) -> Response:
        """``/healthz``: this loop answers. ``/readyz``: 503 with a one-line reason when not ready."""
        if method not in _PROBE_METHODS:
            self.refusals.refuse("method not allowed")
            return METHOD_NOT_ALLOWED
        reason = self._readiness() if path == READY_PATH and self._readiness is not None else None
        if reason is not None:
            return _ProbeAnswer(503, f"not ready: {reason}")
        return ALIVE if path == HEALTH_PATH else READY


def _resolve(signal: asyncio.Future[None]) -> None:
    if not signal.done():
        signal.set_result(None)
