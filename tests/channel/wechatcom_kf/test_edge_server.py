"""The callback edge against slow and hostile clients (invariant 1) and odd but legal HTTP: real
sockets on loopback (Linux routes all of 127/8 to lo, so 127.0.0.2 and .3 are other clients), small
EdgeLimits so deadlines pass in a fraction of a second, bounded loops, generous timeouts only."""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping

import pytest

from channel.wechatcom_kf.edge import admission
from channel.wechatcom_kf.edge.admission import Gate
from channel.wechatcom_kf.edge.callback import BAD_REQUEST, Response
from channel.wechatcom_kf.edge.http_server import CallbackServer
from channel.wechatcom_kf.edge.limits import EdgeLimits, peer_address
from channel.wechatcom_kf.edge.refusals import Refusals

FAST = EdgeLimits(head_deadline_seconds=0.5, body_deadline_seconds=0.5, idle_seconds=1.0)
TIMEOUT = 5.0  # every socket read: generous, only there so a failing test cannot hang


class StubHandler:
    """The callback handler's surface: GET echoes ``echostr`` (400 without), POST says success."""

    max_body_bytes = 1024

    def __init__(self) -> None:
        self.calls: list[str] = []

    def handle_get(self, query: Mapping[str, str]) -> Response:
        self.calls.append("GET")
        return Response(200, query["echostr"]) if "echostr" in query else BAD_REQUEST

    def handle_post(self, query: Mapping[str, str], body: bytes) -> Response:
        self.calls.append("POST")
        return Response(200, "success")


ServerFactory = Callable[..., CallbackServer]


@pytest.fixture
def handler() -> StubHandler:
    return StubHandler()


@pytest.fixture
def start(handler: StubHandler) -> Iterator[ServerFactory]:
    servers: list[tuple[CallbackServer, threading.Thread]] = []

    def factory(limits: EdgeLimits = FAST, **kwargs: object) -> CallbackServer:
        srv = CallbackServer(handler, "127.0.0.1", 0, 64, limits=limits, **kwargs)  # type: ignore[arg-type]
        thread = threading.Thread(target=srv.serve, daemon=True)
        thread.start()
        assert srv.ready.wait(TIMEOUT)
        servers.append((srv, thread))
        return srv

    yield factory
    for srv, thread in servers:
        srv.stop()
        thread.join(TIMEOUT)


class Client:
    """A raw HTTP/1.1 client on one connection, bound to ``source`` (an address in 127/8)."""

    def __init__(self, port: int, source: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT, source_address=(source, 0))
        self.rfile = self.sock.makefile("rb")

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str, target: str, headers: str = "", body: bytes = b"") -> None:
        length = f"Content-Length: {len(body)}\r\n" if body else ""
        self.send(f"{method} {target} HTTP/1.1\r\nHost: x\r\n{length}{headers}\r\n".encode() + body)

    def answer(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        """One answer: status, headers (lower-case names), body (none read after HEAD)."""
        status_line = self.rfile.readline(1024)
        if not status_line:
            raise EOFError("the server closed the connection")
        headers: dict[str, str] = {}
        for _ in range(100):
            line = self.rfile.readline(8192).rstrip(b"\r\n")
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        size = 0 if head_only else int(headers.get("content-length", "0"))
        return int(status_line.split()[1]), headers, self.rfile.read(size)

    def closed(self) -> bool:
        """True when the server closed the connection (EOF or reset) within TIMEOUT."""
        try:
            return self.rfile.read(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


@contextlib.contextmanager
def clients(port: int, count: int, source: str = "127.0.0.1") -> Iterator[list[Client]]:
    opened: list[Client] = []
    try:
        for _ in range(count):
            opened.append(Client(port, source))
        yield opened
    finally:
        for client in opened:
            client.close()


def wait_for(condition: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def drip(client: Client, data: bytes, every: float) -> int:
    """Send ``data`` a byte at a time; the number of bytes sent before the server closed (bounded)."""
    for sent, byte in enumerate(data):
        readable, _, _ = select.select([client.sock], [], [], every)
        if readable:  # a server that closes makes the socket readable (EOF)
            return sent
        try:
            client.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return sent
    return len(data)


# --- deadlines --------------------------------------------------------------------------------------


def test_a_slow_drip_is_closed_at_the_head_deadline_though_bytes_keep_coming(start):
    srv = start()
    slow = Client(srv.port)
    started = time.monotonic()
    head = b"GET /wxkf/?echostr=x HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200  # never complete
    sent = drip(slow, head, every=0.05)  # 200 bytes over ~10 s, were it not closed
    assert sent < len(head)
    assert slow.closed()
    assert time.monotonic() - started < 4.0  # 0.5 s deadline; generous for a loaded machine
    assert srv.metrics()["refused"].get("head deadline") == 1
    fresh = Client(srv.port)
    fresh.request("GET", "/wxkf/?echostr=ok")
    assert fresh.answer()[::2] == (200, b"ok")


def test_a_connection_that_says_nothing_is_closed_at_the_head_deadline(start):
    srv = start()
    silent = Client(srv.port)
    assert silent.closed()
    assert srv.metrics()["refused"].get("head deadline") == 1


def test_a_slow_body_is_closed_at_the_body_deadline(start, handler):
    srv = start()
    client = Client(srv.port)
    client.send(b"POST /wxkf/ HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n")
    assert drip(client, b"b" * 200, every=0.05) < 200
    assert client.closed()
    assert srv.metrics()["refused"].get("body deadline") == 1
    assert handler.calls == []


def test_keep_alive_waits_idle_seconds_then_closes_without_a_refusal(start):
    srv = start(EdgeLimits(head_deadline_seconds=0.5, body_deadline_seconds=0.5, idle_seconds=3.0))
    client = Client(srv.port)
    client.request("GET", "/wxkf/?echostr=1")
    assert client.answer()[0] == 200
    time.sleep(1.0)  # past the head deadline, within idle: the next head's deadline starts at its byte
    client.request("GET", "/wxkf/?echostr=2")
    assert client.answer()[::2] == (200, b"2")
    assert client.closed()  # after idle_seconds
    assert srv.metrics()["refused"] == {}


# --- per-address connection caps and the allow hook -------------------------------------------------


def test_one_address_over_its_cap_is_closed_at_once_while_another_is_answered(start):
    srv = start(EdgeLimits(max_connections_per_address=3, head_deadline_seconds=5, idle_seconds=5))
    with clients(srv.port, 3) as kept:
        assert wait_for(lambda: srv.metrics()["connections_open"] == 3)
        with clients(srv.port, 1) as (extra,):
            assert extra.closed()
        other = Client(srv.port, source="127.0.0.2")
        other.request("GET", "/wxkf/?echostr=other")
        assert other.answer()[::2] == (200, b"other")
        kept[0].request("GET", "/wxkf/?echostr=kept")  # the admitted ones still work
        assert kept[0].answer()[::2] == (200, b"kept")
    assert srv.metrics()["refused"] == {"connections per address over the limit": 1}


def test_the_total_connection_cap(start):
    srv = start(EdgeLimits(max_connections=2, head_deadline_seconds=5, idle_seconds=5))
    with clients(srv.port, 2, source="127.0.0.2"):
        assert wait_for(lambda: srv.metrics()["connections_open"] == 2)
        with clients(srv.port, 1, source="127.0.0.3") as (extra,):
            assert extra.closed()
    assert srv.metrics()["refused"] == {"connection over the limit": 1}


def test_the_allow_hook_closes_a_refused_address_at_once(start):
    seen: list[str] = []

    def allow(address: str) -> bool:
        seen.append(address)
        return address != "127.0.0.1"

    srv = start(allow=allow)
    refused = Client(srv.port, source="127.0.0.1")
    assert refused.closed()
    allowed = Client(srv.port, source="127.0.0.2")
    allowed.request("GET", "/wxkf/?echostr=in")
    assert allowed.answer()[::2] == (200, b"in")
    assert seen == ["127.0.0.1", "127.0.0.2"]  # once per connection, with the peer address
    assert srv.metrics()["refused"] == {"address not allowed": 1}


def test_a_failing_allow_hook_lets_addresses_in(start, caplog):
    def broken(address: str) -> bool:
        raise RuntimeError("allowlist bug")

    srv = start(allow=broken)
    for _ in range(3):
        client = Client(srv.port)
        client.request("GET", "/wxkf/?echostr=x")
        assert client.answer()[0] == 200
        client.close()
    assert sum("allowlist check failed" in r.getMessage() for r in caplog.records) == 1


# --- trusted proxies ---------------------------------------------------------------------------------


def test_forwarded_addresses_count_only_from_a_trusted_proxy(start):
    seen: list[str] = []

    def allow(address: str) -> bool:
        seen.append(address)
        return address in ("1.2.3.4", "127.0.0.2")

    srv = start(EdgeLimits(trusted_proxies=frozenset({"127.0.0.3"})), allow=allow)
    direct = Client(srv.port, source="127.0.0.2")  # not a proxy: its header is ignored
    direct.request("GET", "/wxkf/?echostr=d", "X-Forwarded-For: 5.6.7.8\r\n")
    assert direct.answer()[::2] == (200, b"d")
    proxy = Client(srv.port, source="127.0.0.3")  # admitted though not allowed: its requests are checked
    proxy.request("GET", "/wxkf/?echostr=p", "X-Forwarded-For: 5.6.7.8, 1.2.3.4\r\n")
    assert proxy.answer()[::2] == (200, b"p")  # the rightmost hop, the one the proxy wrote
    proxy.request("GET", "/wxkf/?echostr=f", "X-Forwarded-For: 1.2.3.4, 5.6.7.8\r\n")
    status, headers, _ = proxy.answer()
    assert (status, headers.get("connection")) == (403, "close")  # a forged left hop does not help
    assert proxy.closed()
    assert seen == ["127.0.0.2", "1.2.3.4", "5.6.7.8"]
    assert srv.metrics()["refused"] == {"address not allowed": 1}


def test_a_trusted_proxy_is_not_capped_per_address(start):
    limits = EdgeLimits(
        max_connections_per_address=1, trusted_proxies=frozenset({"127.0.0.0/30"}), head_deadline_seconds=5
    )
    srv = start(limits)
    with clients(srv.port, 3, source="127.0.0.3") as through_proxy:
        for client in through_proxy:
            client.request("GET", "/wxkf/?echostr=x", "X-Forwarded-For: 1.2.3.4\r\n")
            assert client.answer()[0] == 200
    assert srv.metrics()["refused"] == {}


# --- request rate -----------------------------------------------------------------------------------


def test_requests_over_the_rate_get_429_and_a_close_and_others_go_on(start):
    srv = start(EdgeLimits(requests_per_address_per_minute=3, trusted_proxies=frozenset({"127.0.0.3"})))
    busy = Client(srv.port)
    for n in range(3):
        busy.request("GET", f"/wxkf/?echostr={n}")
        assert busy.answer()[0] == 200
    busy.request("GET", "/wxkf/?echostr=4")
    status, headers, _ = busy.answer()
    assert (status, headers.get("connection")) == (429, "close")
    assert busy.closed()
    other = Client(srv.port, source="127.0.0.2")
    other.request("GET", "/wxkf/?echostr=ok")
    assert other.answer()[0] == 200
    proxy = Client(srv.port, source="127.0.0.3")  # behind a proxy, the forwarded address is counted
    for client_address in ("1.1.1.1", "1.1.1.1", "1.1.1.1", "2.2.2.2"):
        proxy.request("GET", "/wxkf/?echostr=p", f"X-Forwarded-For: {client_address}\r\n")
        assert proxy.answer()[0] == 200
    assert srv.metrics()["refused"] == {"rate limited": 1}


def test_rate_buckets_are_bounded_and_forgotten_when_full_again(monkeypatch):
    monkeypatch.setattr(admission, "MAX_TRACKED_ADDRESSES", 2)
    gate = Gate(EdgeLimits(requests_per_address_per_minute=1), None, Refusals(logging.getLogger("t")))
    gate.request("10.0.0.1", False, [], now=0.0)
    with pytest.raises(Exception, match="429"):
        gate.request("10.0.0.1", False, [], now=1.0)
    gate.request("10.0.0.2", False, [], now=1.0)
    gate.request("10.0.0.3", False, [], now=1.0)  # evicts 10.0.0.1, the least recently used
    gate.request("10.0.0.1", False, [], now=2.0)  # a fresh bucket
    gate.prune(now=100.0)
    assert not gate._buckets


# --- HEAD and malformed requests --------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/wxkf/?echostr=abc", "/wxkf/", "/"])
def test_head_answers_like_get_without_a_body_and_keeps_the_connection(start, caplog, target):
    caplog.set_level(logging.DEBUG)
    srv = start()
    client = Client(srv.port)
    client.request("GET", target)
    get_status, get_headers, get_body = client.answer()
    client.request("HEAD", target)
    status, headers, _ = client.answer(head_only=True)
    assert (status, headers["content-length"]) == (get_status, str(len(get_body)))
    assert "connection" not in headers
    client.request("GET", target)  # the next bytes are this answer: HEAD's had no body
    status, headers, body = client.answer()
    assert (status, headers["content-length"], body) == (get_status, get_headers["content-length"], get_body)
    client.send(f"HEAD {target} HTTP/1.1\r\nHost: x\r\n\r\nGET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert client.answer(head_only=True)[0] == get_status  # pipelined HEAD then GET
    assert client.answer()[::2] == (get_status, get_body)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_head_on_a_405_names_head_in_allow(start):
    srv = start()
    client = Client(srv.port)
    client.request("PUT", "/wxkf/", body=b"x")
    status, headers, _ = client.answer()
    assert (status, headers["allow"]) == (405, "GET, HEAD, POST")


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"OUTSIDER-TEXT-\xac\r\n\r\n",
        b"GET /wxkf/ HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        b"GET /wxkf/ HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
        b"POST /wxkf/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"GET /wxkf/ HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
        b"GET /wxkf/ HTTP/9.9\r\nHost: x\r\n\r\n",
        b"HEAD http://x/wxkf/ HTTP/1.1\r\nHost: x\r\n\r\n",
        b"HEAD /wxkf/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_malformed_requests_get_400_without_a_traceback(start, caplog, raw):
    caplog.set_level(logging.DEBUG)
    srv = start()
    client = Client(srv.port)
    client.send(raw)
    status, headers, _ = client.answer(head_only=raw.startswith(b"HEAD"))
    assert (status, headers.get("connection")) == (400, "close")
    assert client.closed()
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert not any(r.exc_info for r in caplog.records)
    assert srv.metrics()["refused"] == {"malformed request": 1}
    assert "OUTSIDER" not in caplog.text and "GARBAGE" not in caplog.text  # none of their bytes logged


def test_a_flood_of_refusals_is_one_log_line_per_kind(start, caplog):
    caplog.set_level(logging.DEBUG, logger="channel.wechatcom_kf")
    srv = start()
    for _ in range(20):
        client = Client(srv.port)
        client.send(b"GARBAGE\r\n\r\n")
        assert client.answer()[0] == 400
        client.close()
    lines = [r for r in caplog.records if "malformed request" in r.getMessage()]
    assert len(lines) == 1
    assert srv.metrics()["refused"] == {"malformed request": 20}


# --- the rest of the surface ------------------------------------------------------------------------


def test_metrics_count_answers_by_status(start):
    srv = start()
    client = Client(srv.port)
    for target in ("/wxkf/?echostr=a", "/wxkf/", "/elsewhere"):
        client.request("GET", target)
        client.answer()
    client.request("POST", "/wxkf/", body=b"<xml/>")
    client.answer()
    metrics = srv.metrics()
    assert metrics["answered"] == {200: 2, 400: 1, 404: 1}
    assert metrics["connections_open"] == 1 and metrics["addresses_open"] == 1
    assert metrics["refused"] == {"unknown path": 1}


def test_the_old_positional_constructor_keeps_the_defaults(handler):
    srv = CallbackServer(handler, "127.0.0.1", 0, 16)  # type: ignore[arg-type]
    assert srv.limits == EdgeLimits()
    assert srv.limits.max_connections == 1024 and srv.limits.trusted_proxies == frozenset()


def test_edge_limits_are_validated_and_name_the_field():
    with pytest.raises(ValueError, match="head_deadline_seconds"):
        EdgeLimits(head_deadline_seconds=0)
    with pytest.raises(ValueError, match="requests_per_address_per_minute"):
        EdgeLimits(requests_per_address_per_minute=-1)
    with pytest.raises(ValueError, match="trusted_proxies"):
        EdgeLimits(trusted_proxies=frozenset({"not-an-ip"}))
    limits = EdgeLimits(trusted_proxies=frozenset({"10.0.0.0/8", "::1"}))
    assert limits.trusts("10.1.2.3") and limits.trusts("::1") and not limits.trusts("11.0.0.1")
    assert limits.client_address("10.0.0.1", [(b"x-forwarded-for", b"garbage, 10.0.0.2")]) == "10.0.0.1"


def test_peer_addresses_are_plain_strings():
    assert peer_address(("::ffff:1.2.3.4", 5, 0, 0)) == "1.2.3.4"
    assert peer_address(("127.0.0.1", 5)) == "127.0.0.1"
    assert peer_address(None) == "unknown"
