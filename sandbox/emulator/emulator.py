"""WeComEmulator: the Python face of the emulator (see README.md in this folder)."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Any, ClassVar
from urllib.parse import urlsplit

from sandbox.emulator import feed, media, server
from sandbox.emulator.actions import ActionsMixin, check_servicer_status
from sandbox.emulator.callbacks import CallbackSender
from sandbox.emulator.crypto import CallbackCrypto, new_aes_key
from sandbox.emulator.faults import Faults
from sandbox.emulator.models import (
    SERVICER_RECEIVING,
    Account,
    ApiError,
    ApiRequest,
    Customer,
    Rejection,
    SentMessage,
    Servicer,
    UploadedMedia,
)
from sandbox.emulator.state import EmulatorState, random_token
from sandbox.emulator.tokens import TokenRegistry

logger = logging.getLogger(__name__)
LOWER_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
# Loopback addresses other than 127.0.0.1 (Linux routes all of 127/8 to lo): a test can bind a client
# socket to one of them and play WeCom's callback server, and 127.0.0.1 stays "not WeCom".
DEFAULT_CALLBACK_IPS = ("127.0.0.2", "127.0.0.3")


class WeComEmulator(ActionsMixin):
    """A WeCom KF server on loopback: API, callbacks, fault knobs and records of what the app did."""

    # Every emulator's credentials and token registry, kept after the emulator itself is gone, so a
    # test run can check at its end that none of them reached a log line.
    _credential_sources: ClassVar[list[tuple[tuple[str, ...], TokenRegistry]]] = []

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        corp_id: str | None = None,
        secret: str | None = None,
        callback_token: str | None = None,
        aes_key: str | None = None,
        account_name: str = "客服",
    ) -> None:
        self.host, self.port = host, port
        self.corp_id = corp_id or "ww" + secrets.token_hex(8)
        self.secret = secret or random_token(43)
        self.callback_token = callback_token or random_token(32)
        self.aes_key = aes_key or new_aes_key()
        self.callback_url: str | None = None
        self.crypto = CallbackCrypto(self.callback_token, self.aes_key, self.corp_id)
        self.state = EmulatorState()
        self.tokens = TokenRegistry()
        self.faults = Faults()
        self.cursor_salt = secrets.token_bytes(6)
        # Test knobs.
        self.page_size_cap: int | None = None
        self.sync_token_required = False
        self.tokenless_sync_per_minute = 60
        self.callback_attempts = 3
        self.callback_retry_delay = 0.5
        self.callback_timeout = 5.0
        self.media_bytes_cap: int | None = media.MEDIA_BYTES_CAP  # oldest media dropped past it
        self.callback_ips: list[str] = list(DEFAULT_CALLBACK_IPS)  # what getcallbackip answers
        # The local address callbacks, URL verifications and raw posts are sent from (None: the
        # kernel's choice, 127.0.0.1 on loopback); e.g. "127.0.0.2" to come from one of callback_ips.
        self.callback_source_address: str | None = None
        self.account_list_empty = False  # True: kf/account/list lists none (no account bound to the app)
        self._tokenless: dict[str, deque[float]] = {}
        self._callbacks = CallbackSender(self)
        self._httpd: server.EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.add_servicer("zhangsan")
        self.default_kfid = self.add_account(account_name)
        WeComEmulator._credential_sources.append(
            ((self.secret, self.callback_token, self.aes_key), self.tokens)
        )

    # ----- lifecycle
    def start(self) -> WeComEmulator:
        """Serve on ``host:port`` (port 0 = a free one) in a daemon thread."""
        if self._httpd is None:
            self._httpd, self._thread = server.serve(self.host, self.port, self)
            self.port = self._httpd.server_address[1]
            self._callbacks.start()
            logger.info("WeCom emulator listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.close_all()
            self._httpd = None
        self._callbacks.stop()

    def __enter__(self) -> WeComEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def api_base(self) -> str:
        return self.base_url + "cgi-bin/"

    @property
    def page_url(self) -> str:
        return self.base_url + "sandbox/"

    def channel_config(self) -> dict[str, Any]:
        """``wechatcom_*`` settings pointing the channel at this emulator (port from callback_url)."""
        config: dict[str, Any] = {
            "channel_type": "wechatcom_kf",
            "wechatcom_corp_id": self.corp_id,
            "wechatcom_kf_secret": self.secret,
            "wechatcom_kf_token": self.callback_token,
            "wechatcom_kf_aes_key": self.aes_key,
            "wechatcom_kf_api_base": self.api_base,
        }
        if self.callback_url:
            parts = urlsplit(self.callback_url)
            config["wechatcom_kf_host"] = parts.hostname or "127.0.0.1"
            if parts.port:
                config["wechatcom_kf_port"] = parts.port
        return config

    # ----- directory
    def add_account(self, name: str = "客服") -> str:
        open_kfid = "wk" + random_token(30, LOWER_ALNUM)
        with self.state.changed:
            self.state.accounts[open_kfid] = Account(open_kfid, name)
            self.state.logs[open_kfid] = []
            self.state.changed.notify_all()
        return open_kfid

    def add_customer(self, nickname: str = "客户", gender: int = 0) -> str:
        user = "wm" + random_token(30, LOWER_ALNUM)
        with self.state.changed:
            self.state.customers[user] = Customer(user, nickname, gender)
            self.state.changed.notify_all()
        return user

    def add_servicer(self, userid: str, status: int = SERVICER_RECEIVING) -> None:
        """A receptionist (or a new status for a known one): 0 receiving, 1 stopped (§7 coding).
        ``service_state/trans`` to 3 needs a known one (95014) who is receiving (95019)."""
        check_servicer_status(status, 0)
        with self.state.changed:
            self.state.servicers[userid] = Servicer(userid, status)
            self.state.changed.notify_all()

    def remove_servicer(self, userid: str) -> None:
        """Forget a receptionist (unknown userid → KeyError); an account may have none at all."""
        with self.state.changed:
            if self.state.servicers.pop(userid, None) is None:
                raise KeyError(f"unknown servicer {userid}")
            self.state.changed.notify_all()

    def servicer(self, userid: str) -> Servicer:
        """A copy of one receptionist's record (unknown userid → KeyError)."""
        with self.state.lock:
            entry = self.state.servicers.get(userid)
            if entry is None:
                raise KeyError(f"unknown servicer {userid}")
            return Servicer(entry.userid, entry.status, entry.stop_type)

    def _known(self, open_kfid: str, user: str | None = None) -> None:
        if open_kfid not in self.state.accounts:
            raise KeyError(f"unknown open_kfid {open_kfid}")
        if user is not None and user not in self.state.customers:
            raise KeyError(f"unknown external_userid {user}")

    # ----- callbacks
    def fire_callback(self, open_kfid: str, url: str | None = None, wait: bool = True) -> int | Future[int]:
        """POST one callback with a fresh Token; the HTTP status (0 = failed), or a Future if not ``wait``."""
        return self._callbacks.fire(open_kfid, url, wait)

    def post_callback_raw(
        self, body: bytes, params: dict[str, Any], url: str | None = None
    ) -> tuple[int, bytes]:
        return self._callbacks.post_raw(body, params, url)

    def verify_url(self, url: str | None = None) -> tuple[int, bytes, str]:
        return self._callbacks.verify_url(url)

    def encrypt_callback(self, open_kfid: str) -> tuple[dict[str, str], bytes]:
        """A valid signed callback (fresh Token) that is not sent."""
        params, body, _ = self._callbacks.encrypt(open_kfid)
        return params, body

    # ----- what the app did
    @property
    def sends(self) -> list[SentMessage]:
        with self.state.lock:
            return list(self.state.sends)

    def sends_to(self, user: str) -> list[SentMessage]:
        return [s for s in self.sends if s.touser == user]

    def wait_for_sends(self, n: int, timeout: float = 10.0, user: str | None = None) -> list[SentMessage]:
        """Wait until at least ``n`` sends (to ``user`` if given) exist; returns them all."""

        def current() -> list[SentMessage]:
            return [s for s in self.state.sends if user is None or s.touser == user]

        got = self.state.wait_until(lambda: len(current()) >= n, timeout)
        sends = current()
        if not got:
            summary = ", ".join(f"{s.api}:{s.msgtype}" for s in sends[-10:])
            raise TimeoutError(
                f"expected {n} sends, got {len(sends)} after {timeout:.1f}s [{summary}]; "
                f"rejections: {[(r.api, r.errcode) for r in self.rejections[-5:]]}"
            )
        return sends

    def wait_until(self, predicate: Any, timeout: float = 10.0) -> Any:
        """Wait (on the state condition, no polling) until ``predicate()`` is truthy; returns its value."""
        return self.state.wait_until(predicate, timeout)

    @property
    def rejections(self) -> list[Rejection]:
        with self.state.lock:
            return list(self.state.rejections)

    def protocol_log(self, since: int = 0) -> list[dict[str, Any]]:
        return self.state.items_since(self.state.protocol, since, 0)

    def feed(self, since: int = 0) -> list[dict[str, Any]]:
        return self.state.items_since(self.state.feed, since, 0)

    def uploaded_media(self, media_id: str) -> UploadedMedia:
        with self.state.lock:
            return self.state.media[media_id]

    def service_state(self, open_kfid: str, user: str) -> int:
        with self.state.lock:
            return self.state.session(open_kfid, user).state

    def messages(self, open_kfid: str) -> list[dict[str, Any]]:
        """A copy of the account's sync_msg log (what sync_msg would return, oldest first)."""
        with self.state.lock:
            return [dict(item) for item in self.state.logs.get(open_kfid, [])]

    # ----- knobs kept on Faults, reachable here too
    @property
    def trans_errcode(self) -> int | None:
        """While set, every ``service_state/trans`` answers this errcode (``faults.trans_errcode``)."""
        return self.faults.trans_errcode

    @trans_errcode.setter
    def trans_errcode(self, errcode: int | None) -> None:
        if errcode is not None and (not isinstance(errcode, int) or isinstance(errcode, bool)):
            raise TypeError("trans_errcode must be an int errcode or None")
        self.faults.trans_errcode = errcode

    # ----- tokens, clock, secrets
    def invalidate_tokens(self) -> None:
        """Every access_token issued so far now answers 40014."""
        self.tokens.revoke_all()

    def advance_time(self, seconds: float) -> None:
        """Move the emulator's clock (code/token validity, windows, default send_time) forward."""
        with self.state.changed:
            self.state.clock_offset += seconds
            self.state.changed.notify_all()

    def secrets(self) -> list[str]:
        """Every credential the app must never log: secret, callback token, AES key, access tokens."""
        return [self.secret, self.callback_token, self.aes_key, *self.tokens.issued_access_tokens()]

    @classmethod
    def secrets_of_all_emulators(cls) -> list[str]:
        """secrets() of every emulator this process created, including stopped ones."""
        return [
            value
            for fixed, tokens in cls._credential_sources
            for value in (*fixed, *tokens.issued_access_tokens())
        ]

    # ----- hooks used by the handlers
    def media_kind(self, media_id: str) -> str | None:
        item = media.lookup(self, media_id)
        return item.kind if item else None

    def note_tokenless_sync(self, open_kfid: str) -> None:
        """sync_msg without a callback token is "strictly limited": at most N per minute per account."""
        now = time.monotonic()
        with self.state.lock:
            calls = self._tokenless.setdefault(open_kfid, deque())
            while calls and now - calls[0] > 60:
                calls.popleft()
            if len(calls) >= self.tokenless_sync_per_minute:
                raise ApiError(45009, "api freq out of limit (sync_msg without token)")
            calls.append(now)

    def feed_send(self, sent: SentMessage) -> None:
        feed.sent(self.state, sent)

    def feed_system(self, open_kfid: str, user: str, text: str) -> None:
        feed.system(self.state, open_kfid, user, text)

    def feed_rejection(self, req: ApiRequest, rejection: Rejection) -> None:
        feed.rejection(self.state, req, rejection)
