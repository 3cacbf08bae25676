"""Fires encrypted, signed callbacks at the app (fact sheet §1), in a small background pool."""

from __future__ import annotations

import logging
import secrets
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import requests

from sandbox.emulator.crypto import kf_event_xml
from sandbox.emulator.redact import shorten

if TYPE_CHECKING:
    from sandbox.emulator.emulator import WeComEmulator

logger = logging.getLogger(__name__)
POOL_WORKERS = 4


class CallbackSender:
    """POSTs callbacks; retries like WeCom (connection failure, timeout or non-200), bounded."""

    def __init__(self, emu: WeComEmulator) -> None:
        self._emu = emu
        self._pool: ThreadPoolExecutor | None = None

    def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=POOL_WORKERS, thread_name_prefix="emu-callback")

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def encrypt(self, open_kfid: str) -> tuple[dict[str, str], bytes, str]:
        """Params, body and the fresh sync Token of one valid callback for ``open_kfid``."""
        emu = self._emu
        token = emu.tokens.issue_sync_token(open_kfid, emu.state.now())
        xml = kf_event_xml(emu.corp_id, int(emu.state.now()), token, open_kfid)
        params, body = emu.crypto.encrypt_post(xml)
        return params, body, token

    def fire(self, open_kfid: str, url: str | None, wait: bool) -> int | Future[int]:
        """Send one callback now (``wait``) or in the pool; returns the final HTTP status (0 = failed)."""
        target = url or self._emu.callback_url
        if not target:
            logger.debug("no callback_url set; callback for %s not sent", open_kfid)
            return 0
        if wait or self._pool is None:
            return self._deliver(open_kfid, target)
        return self._pool.submit(self._deliver, open_kfid, target)

    def _deliver(self, open_kfid: str, url: str) -> int:
        params, body, token = self.encrypt(open_kfid)
        emu = self._emu
        attempts = max(1, int(emu.callback_attempts))
        status = 0
        for attempt in range(1, attempts + 1):
            status = self._post_once(url, params, body, open_kfid, token, attempt)
            if status == 200:
                break
            if attempt < attempts:
                time.sleep(emu.callback_retry_delay)
        return status

    def _post_once(
        self, url: str, params: dict[str, str], body: bytes, open_kfid: str, token: str, attempt: int
    ) -> int:
        status = 0
        error: str | None = None
        try:
            resp = requests.post(url, params=params, data=body, timeout=self._emu.callback_timeout)
            status = resp.status_code
        except requests.RequestException as exc:
            error = type(exc).__name__
        self._log({"open_kfid": open_kfid, "token": shorten(token), "attempt": attempt}, url, status, error)
        return status

    def post_raw(self, body: bytes, params: dict[str, Any], url: str | None) -> tuple[int, bytes]:
        """POST arbitrary bytes (forged or malformed callbacks); (0, b"") when the connection failed."""
        target = url or self._emu.callback_url
        if not target:
            raise ValueError("no callback url")
        try:
            resp = requests.post(target, params=params, data=body, timeout=self._emu.callback_timeout)
        except requests.RequestException as exc:
            self._log({"raw": True}, target, 0, type(exc).__name__)
            return 0, b""
        self._log({"raw": True}, target, resp.status_code, None)
        return resp.status_code, resp.content

    def verify_url(self, url: str | None) -> tuple[int, bytes, str]:
        """GET URL verification with an encrypted echostr; returns (status, body, expected plaintext)."""
        target = url or self._emu.callback_url
        if not target:
            raise ValueError("no callback url")
        expected = str(secrets.randbelow(10**18))
        params = self._emu.crypto.encrypt_echostr(expected)
        try:
            resp = requests.get(target, params=params, timeout=self._emu.callback_timeout)
        except requests.RequestException as exc:
            self._log({"verify": True}, target, 0, type(exc).__name__)
            return 0, b"", expected
        self._log({"verify": True}, target, resp.status_code, None)
        return resp.status_code, resp.content, expected

    def _log(self, request: dict[str, Any], url: str, status: int, error: str | None) -> None:
        request = {**request, "url": url.split("?", 1)[0]}
        response: dict[str, Any] = {"status": status}
        if error:
            response["error"] = error
        self._emu.state.add_protocol(
            {"kind": "callback", "api": "callback", "request": request, "response": response, "errcode": None}
        )
