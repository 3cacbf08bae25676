"""Fixtures: a started emulator, a small API client over real HTTP, and a callback receiver."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import xmltodict
from wechatpy.enterprise.crypto import WeChatCrypto

from sandbox.emulator import WeComEmulator


@pytest.fixture(autouse=True)
def _quiet_hand_made_client() -> Iterator[None]:
    """These tests play the WeCom client by hand with plain requests and send credentials on
    purpose; urllib3's DEBUG request lines would copy them into the suite-wide log scan, which
    guards the app's logs, not this stand-in client's."""
    urllib3_logger = logging.getLogger("urllib3")
    previous = urllib3_logger.level
    urllib3_logger.setLevel(logging.INFO)
    yield
    urllib3_logger.setLevel(previous)


class Api:
    """The app's side, reduced to plain requests: token in the query string, JSON bodies."""

    def __init__(self, emu: WeComEmulator) -> None:
        self.emu = emu
        self.http = requests.Session()
        self.access_token: str | None = None

    def fetch_token(self) -> str:
        params = {"corpid": self.emu.corp_id, "corpsecret": self.emu.secret}
        answer = self.http.get(self.emu.api_base + "gettoken", params=params, timeout=5).json()
        assert answer["errcode"] == 0, answer
        self.access_token = answer["access_token"]
        return answer["access_token"]

    def post(self, api: str, data: dict[str, Any], token: str | None = None) -> dict[str, Any]:
        params = {"access_token": token or self.access_token or self.fetch_token()}
        return self.http.post(self.emu.api_base + api, params=params, json=data, timeout=5).json()

    def get(self, api: str, **params: str) -> requests.Response:
        params.setdefault("access_token", self.access_token or self.fetch_token())
        return self.http.get(self.emu.api_base + api, params=params, timeout=5)

    def upload(self, kind: str, data: bytes, filename: str = "x.bin", field: str = "media") -> dict[str, Any]:
        params = {"access_token": self.access_token or self.fetch_token(), "type": kind}
        files = {field: (filename, data, "application/octet-stream")}
        return self.http.post(
            self.emu.api_base + "media/upload", params=params, files=files, timeout=5
        ).json()


class Receiver:
    """A tiny callback endpoint that verifies and decrypts with wechatpy, like an app would."""

    def __init__(self, emu: WeComEmulator) -> None:
        self.crypto = WeChatCrypto(emu.callback_token, emu.aes_key, emu.corp_id)
        self.payloads: list[dict[str, Any]] = []
        self.raw: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.gate = threading.Event()  # cleared: answers wait (bounded) until it is set again
        self.gate.set()
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                query = dict(parse_qsl(urlsplit(self.path).query))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.cond:
                    receiver.raw.append((query, body))
                    try:
                        xml = receiver.crypto.decrypt_message(
                            body, query["msg_signature"], query["timestamp"], query["nonce"]
                        )
                        receiver.payloads.append(xmltodict.parse(xml)["xml"])
                    except Exception:  # a forged callback is recorded raw only
                        pass
                    receiver.cond.notify_all()
                receiver.gate.wait(5)
                self._answer(receiver.status, b"")

            def do_GET(self) -> None:
                q = dict(parse_qsl(urlsplit(self.path).query))
                echo = receiver.crypto.check_signature(
                    q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"]
                )
                self._answer(200, echo.encode() if isinstance(echo, str) else echo)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/wxkf/"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def wait(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.payloads) >= n, timeout)
            assert len(self.payloads) >= n, f"expected {n} callbacks, got {len(self.payloads)}"
            return list(self.payloads)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def emu() -> Iterator[WeComEmulator]:
    emulator = WeComEmulator().start()
    emulator.callback_attempts = 1
    yield emulator
    emulator.stop()


@pytest.fixture
def api(emu: WeComEmulator) -> Api:
    return Api(emu)


@pytest.fixture
def receiver(emu: WeComEmulator) -> Iterator[Receiver]:
    rec = Receiver(emu)
    emu.callback_url = rec.url
    yield rec
    rec.close()


@pytest.fixture
def sync_token(emu: WeComEmulator) -> Callable[[str], str]:
    """Make a callback Token for an open_kfid without a receiver (decrypting an unsent callback)."""

    def make(open_kfid: str) -> str:
        params, body = emu.encrypt_callback(open_kfid)
        crypto = WeChatCrypto(emu.callback_token, emu.aes_key, emu.corp_id)
        xml = crypto.decrypt_message(body, params["msg_signature"], params["timestamp"], params["nonce"])
        return str(xmltodict.parse(xml)["xml"]["Token"])

    return make
