"""Fires encrypted, signed callbacks at the app (fact sheet §1), in a small background pool."""

from __future__ import annotations

import logging
import secrets
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter

from sandbox.emulator.crypto import kf_event_xml
from sandbox.emulator.redact import shorten

if TYPE_CHECKING:
    from sandbox.emulator.emulator import WeComEmulator

logger = logging.getLogger(__name__)
POOL_WORKERS = 4


class _SourceAddressAdapter(HTTPAdapter):
    """Connects from ``source`` (a local address, port chosen by the kernel): e.g. 127.0.0.2 to play
    one of WeCom's callback IPs while other loopback clients stay on 127.0.0.1."""

    def __init__(self, source: str) -> None:
        self._source = source
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self._source, 0)
        super().init_poolmanager(*args, **kwargs)


def _request(source: str | None, method: str, url: str, timeout: float, **kwargs: Any) -> requests.Response:
    """``requests.request`` (a fresh session per call, as it does), bound to ``source`` when given."""
    with requests.Session() as session:
        if source:
            adapter = _SourceAddressAdapter(source)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        return session.request(method, url, timeout=timeout, **kwargs)


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
        summary = {"open_kfid": open_kfid, "token": shorten(token), "attempt": attempt}
        return self._exchange(summary, "POST", url, params=params, data=body)[0]

    def post_raw(self, body: bytes, params: dict[str, Any], url: str | None) -> tuple[int, bytes]:
        """POST arbitrary bytes (forged or malformed callbacks); (0, b"") when the connection failed."""
        target = url or self._emu.callback_url
        if not target:
            raise ValueError("no callback url")
        return self._exchange({"raw": True}, "POST", target, params=params, data=body)

    def verify_url(self, url: str | None) -> tuple[int, bytes, str]:
        """GET URL verification with an encrypted echostr; returns (status, body, expected plaintext)."""
        target = url or self._emu.callback_url
        if not target:
            raise ValueError("no callback url")
        expected = str(secrets.randbelow(10**18))
        params = self._emu.crypto.encrypt_echostr(expected)
        status, content = self._exchange({"verify": True}, "GET", target, params=params)
        return status, content, expected

    def _exchange(self, summary: dict[str, Any], method: str, url: str, **kwargs: Any) -> tuple[int, bytes]:
        """One HTTP exchange, logged when it starts (so the log reads in causal order: the callback
        before the sync_msg it triggers) and completed with the status when the answer arrives."""
        state = self._emu.state
        entry = {
            "kind": "callback",
            "api": "callback",
            "request": {**summary, "url": url.split("?", 1)[0]},
            "response": {"status": None},
            "errcode": None,
        }
        state.add_protocol(entry, pending=True)
        status, content, error = 0, b"", None
        try:
            source = self._emu.callback_source_address
            resp = _request(source, method, url, self._emu.callback_timeout, **kwargs)
            status, content = resp.status_code, resp.content
        except requests.RequestException as exc:
            error = type(exc).__name__
        finally:
            response: dict[str, Any] = {"status": status}
            if error:
                response["error"] = error
            state.complete_protocol(entry, response)
        return status, content
