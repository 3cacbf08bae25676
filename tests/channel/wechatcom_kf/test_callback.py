"""Callback endpoint logic (verify, decrypt, schedule) with real wechatpy encryption, and the asyncio
HTTP server in front of it over real HTTP (requests, and raw sockets for framing details)."""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlencode

import pytest
import requests
from wechatpy.enterprise.crypto import WeChatCrypto

from channel.wechatcom_kf.edge import http_server
from channel.wechatcom_kf.edge.callback import (
    MAX_BODY_BYTES,
    CallbackHandler,
    MalformedXml,
    parse_xml_fields,
)
from channel.wechatcom_kf.edge.http_server import CallbackServer
from sandbox.emulator.crypto import signature

TOKEN = "callbacktoken123"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
CORP = "ww0123456789abcdef"


def kf_event(open_kfid: str = "wkA", token: str = "ENCsync") -> str:
    return (
        f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><CreateTime>{int(time.time())}</CreateTime>"
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event>"
        f"<Token><![CDATA[{token}]]></Token><OpenKfId><![CDATA[{open_kfid}]]></OpenKfId></xml>"
    )


def encrypted(plain: str, corp: str = CORP) -> tuple[dict[str, str], bytes]:
    envelope = WeChatCrypto(TOKEN, AES_KEY, corp).encrypt_message(plain, "nonce1", str(int(time.time())))
    fields = parse_xml_fields(envelope)
    params = {
        "msg_signature": fields["MsgSignature"],
        "timestamp": fields["TimeStamp"],
        "nonce": fields["Nonce"],
    }
    return params, f"<xml><Encrypt><![CDATA[{fields['Encrypt']}]]></Encrypt></xml>".encode()


@pytest.fixture
def scheduled():
    return []


@pytest.fixture
def handler(scheduled):
    return CallbackHandler(TOKEN, AES_KEY, CORP, lambda kf, tok: scheduled.append((kf, tok)))


def test_kf_event_schedules_a_pull(handler, scheduled):
    params, body = encrypted(kf_event("wkA", "ENC1"))
    response = handler.handle_post(params, body)
    assert (response.status, response.body) == (200, "success")
    assert scheduled == [("wkA", "ENC1")]


def test_bad_signature_and_wrong_corp_are_forbidden(handler, scheduled):
    params, body = encrypted(kf_event())
    assert handler.handle_post({**params, "msg_signature": "f" * 40}, body).status == 403
    params, body = encrypted(kf_event(), corp="wwsomeoneelse")
    assert handler.handle_post(params, body).status == 403
    assert scheduled == []


@pytest.mark.parametrize(
    "body",
    [b"", b"garbage", b"<xml><Other>1</Other></xml>", b"<xml><Encrypt>x", b"<!DOCTYPE x><xml/>"],
)
def test_malformed_bodies_are_bad_requests(handler, scheduled, body):
    params, _ = encrypted(kf_event())
    assert handler.handle_post(params, body).status in (400, 403)
    assert handler.handle_post({}, body).status == 400
    assert scheduled == []


def test_events_other_than_kf_msg_or_event_are_ignored(handler, scheduled):
    params, body = encrypted(kf_event().replace("kf_msg_or_event", "change_contact"))
    assert handler.handle_post(params, body).status == 200
    params, body = encrypted(kf_event(token=""))
    assert handler.handle_post(params, body).status == 200
    assert scheduled == []


def test_url_verification(handler):
    crypto = WeChatCrypto(TOKEN, AES_KEY, CORP)
    envelope = parse_xml_fields(crypto.encrypt_message("echo-12345", "n", "1700000000"))
    query = {
        "msg_signature": envelope["MsgSignature"],
        "timestamp": "1700000000",
        "nonce": "n",
        "echostr": envelope["Encrypt"],
    }
    assert (handler.handle_get(query).status, handler.handle_get(query).body) == (200, "echo-12345")
    assert handler.handle_get({**query, "msg_signature": "0" * 40}).status == 403
    assert handler.handle_get({"timestamp": "1"}).status == 400


def test_a_wrong_aes_key_is_reported_without_its_value():
    with pytest.raises(ValueError, match="wechatcom_kf_aes_key") as info:
        CallbackHandler(TOKEN, "short-key-value", CORP, lambda *_: None)
    assert "short-key-value" not in str(info.value)


def test_xml_with_entities_is_refused():
    with pytest.raises(MalformedXml):
        parse_xml_fields('<!DOCTYPE a [<!ENTITY b "c">]><xml><A>&b;</A></xml>')


@pytest.fixture
def server(handler):
    srv = CallbackServer(handler, "127.0.0.1", 0, backlog=16)
    thread = threading.Thread(target=srv.serve, daemon=True)
    thread.start()
    assert srv.ready.wait(5)
    yield f"http://127.0.0.1:{srv.port}"
    srv.stop()
    thread.join(5)


def test_http_status_codes(server, scheduled):
    params, body = encrypted(kf_event("wkH", "ENCH"))
    ok = requests.post(server + "/wxkf/", params=params, data=body, timeout=5)
    assert (ok.status_code, ok.text) == (200, "success")
    assert requests.post(server + "/wxkf", params=params, data=body, timeout=5).status_code == 200
    forged = requests.post(
        server + "/wxkf/", params={**params, "msg_signature": "0" * 40}, data=body, timeout=5
    )
    assert forged.status_code == 403
    big = requests.post(server + "/wxkf/", params=params, data=b"x" * (MAX_BODY_BYTES + 1), timeout=5)
    assert big.status_code == 413
    bad = requests.post(server + "/wxkf/", params=params, data=b"<<<", timeout=5)
    assert bad.status_code == 400 and "Traceback" not in bad.text
    assert requests.put(server + "/wxkf/", timeout=5).status_code == 405
    assert requests.get(server + "/elsewhere", timeout=5).status_code == 404
    assert scheduled == [("wkH", "ENCH"), ("wkH", "ENCH")]


def test_chunked_oversized_body_is_refused(server):
    params, _ = encrypted(kf_event())

    def chunks():
        for _ in range(100):
            yield b"y" * 1024

    resp = requests.post(server + "/wxkf/", params=params, data=chunks(), timeout=5)
    assert resp.status_code == 413


@pytest.mark.parametrize("size", [0, 1, 11, 12, 31, 32, 33, 500])
def test_url_verification_echoes_every_padding_length(handler, size):
    plain = "x" * size
    envelope = parse_xml_fields(WeChatCrypto(TOKEN, AES_KEY, CORP).encrypt_message(plain, "n1", "1700000000"))
    query = {
        "msg_signature": envelope["MsgSignature"],
        "timestamp": "1700000000",
        "nonce": "n1",
        "echostr": envelope["Encrypt"],
    }
    response = handler.handle_get(query)
    assert (response.status, response.body) == (200, plain)


def test_garbage_echostr_with_a_valid_signature_is_a_bad_request(handler):
    garbage = "bm90IGFuIGFlcyBibG9jaw=="  # base64 of one AES block that decrypts to nonsense
    query = {
        "msg_signature": signature(TOKEN, "1700000000", "n1", garbage),
        "timestamp": "1700000000",
        "nonce": "n1",
        "echostr": garbage,
    }
    answer = handler.handle_get(query)
    assert answer.status == 400 and "Traceback" not in answer.body


def _raw(server: str, data: bytes, reads: int = 1) -> bytes:
    """Send raw bytes, read until the server closes or ``reads`` answers arrived (bounded)."""
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        answer = b""
        for _ in range(50):
            if answer.count(b"HTTP/1.1 ") >= reads and answer.endswith((b"success", b"request", b"found")):
                break
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def _post_bytes(params: dict[str, str], body: bytes, extra: str = "") -> bytes:
    return (
        f"POST /wxkf/?{urlencode(params)} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def test_keep_alive_and_pipelined_requests_are_answered_in_order(server, scheduled):
    first, body1 = encrypted(kf_event("wk1", "T1"))
    second, body2 = encrypted(kf_event("wk2", "T2"))
    answer = _raw(server, _post_bytes(first, body1) + _post_bytes(second, body2), reads=2)
    assert answer.count(b"HTTP/1.1 200 OK") == 2
    assert scheduled == [("wk1", "T1"), ("wk2", "T2")]


def test_expect_continue_and_a_small_chunked_body_are_accepted(server, scheduled):
    params, body = encrypted(kf_event("wkC", "TC"))
    answer = _raw(server, _post_bytes(params, body, "Expect: 100-continue\r\n"), reads=2)
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")

    def chunks():
        yield body[:100]
        yield body[100:]

    resp = requests.post(server + "/wxkf/", params=params, data=chunks(), timeout=5)
    assert (resp.status_code, resp.text) == (200, "success")
    assert scheduled == [("wkC", "TC"), ("wkC", "TC")]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /wxkf/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc",
        b"POST /wxkf/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
        b"POST /wxkf/ HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /wxkf/ HTTP/1.1\r\n Folded: header\r\nHost: x\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET /wxkf/ HTTP/2.0\r\nHost: x\r\n\r\n",
        b"POST /wxkf/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /wxkf/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"GET /wxkf/?" + b"a" * (20 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /wxkf/?" + b"a" * (20 * 1024),  # an incomplete head over the limit
        b"GET /wxkf/ HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
        b"GET http://x/wxkf/ HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
)
def test_malformed_http_is_a_bad_request_and_closes(server, scheduled, request_bytes):
    answer = _raw(server, request_bytes)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close" in answer
    assert scheduled == []


def test_connections_over_the_limit_are_refused(server, monkeypatch):
    monkeypatch.setattr(http_server, "MAX_CONNECTIONS", 2)
    host, port = server.removeprefix("http://").split(":")
    kept = [socket.create_connection((host, int(port)), timeout=5) for _ in range(2)]
    try:
        time.sleep(0.2)  # let the server admit both
        with socket.create_connection((host, int(port)), timeout=5) as extra:
            assert extra.recv(100) == b""  # closed without an answer
    finally:
        for sock in kept:
            sock.close()


def test_idle_connections_are_closed(server, monkeypatch):
    monkeypatch.setattr(http_server, "IDLE_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(http_server, "SWEEP_SECONDS", 0.1)
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"POST /wxkf/ HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")  # never completed
        assert sock.recv(100) == b""
