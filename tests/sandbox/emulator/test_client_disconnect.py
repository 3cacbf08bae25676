"""A client that dies mid-request is routine: one DEBUG line, no traceback on stderr, still serving."""

from __future__ import annotations

import logging
import socket
import struct
import time

import pytest
import requests

from sandbox.emulator import WeComEmulator
from sandbox.emulator.httpbase import QuietThreadingHTTPServer

LOGGER = "sandbox.emulator.httpbase"


def reset_mid_request(port: int) -> None:
    """Send half a request, then abort the connection with a TCP RST (SO_LINGER 0), like a SIGKILL."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b'POST /cgi-bin/kf/sync_msg HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"cur')
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def wait_for_record(caplog: pytest.LogCaptureFixture, text: str, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(text in r.getMessage() for r in caplog.records if r.name == LOGGER):
            return True
        time.sleep(0.01)
    return False


def test_reset_client_leaves_no_traceback_and_server_keeps_serving(
    emu: WeComEmulator, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    for _ in range(3):
        reset_mid_request(emu.port)
    assert wait_for_record(caplog, "ConnectionResetError")
    gone = [r for r in caplog.records if r.name == LOGGER]
    assert gone and all(r.levelno == logging.DEBUG and r.exc_info is None for r in gone)
    assert capfd.readouterr().err == ""
    answer = requests.get(emu.api_base + "gettoken", params={"corpid": emu.corp_id}, timeout=5)
    assert answer.status_code == 200 and answer.json()["errcode"] == 40001


def test_other_errors_are_warnings_naming_the_type(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    server = QuietThreadingHTTPServer(("127.0.0.1", 0), object)  # type: ignore[arg-type]
    try:
        caplog.set_level(logging.DEBUG, logger=LOGGER)
        try:
            raise ValueError("bad access_token=abc123 here")
        except ValueError:
            server.handle_error(None, ("127.0.0.1", 4242))
    finally:
        server.server_close()
    [record] = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.WARNING
    assert "ValueError" in record.getMessage() and "abc123" not in record.getMessage()
    assert record.exc_info is None
    assert capfd.readouterr().err == ""
