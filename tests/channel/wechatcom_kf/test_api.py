"""KfApi against the WeCom emulator over real HTTP: tokens, retries, errcodes, media, redaction."""

from __future__ import annotations

import contextlib
import http.client
import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from channel.wechatcom_kf.api import KfApi, parse_content_disposition
from channel.wechatcom_kf.errors import (
    KfAccessTokenInvalid,
    KfCredentialError,
    KfDuplicateMsgId,
    KfError,
    KfMediaError,
    KfNetworkError,
    KfRateLimited,
    KfSendLimitReached,
    KfSessionStateInvalid,
    KfSyncTokenInvalid,
)
from channel.wechatcom_kf.retry import RetryPolicy
from sandbox.emulator import WeComEmulator

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def make_api(emu: WeComEmulator, attempts: int = 5, **kwargs: Any) -> KfApi:
    """A client whose inline retries (the calls other than sync_msg/send_msg/upload) are quick."""
    quick = RetryPolicy(base=0.001, cap=0.01, max_attempts=attempts)
    return KfApi(emu.corp_id, emu.secret, api_base=emu.api_base, timeout=5.0, quick=quick, **kwargs)


@pytest.fixture
def api(emu: WeComEmulator) -> Iterator[KfApi]:
    client = make_api(emu)
    yield client
    client.close()


def calls(emu: WeComEmulator, api: str) -> list[dict[str, Any]]:
    return [e for e in emu.protocol_log() if e["kind"] == "api" and e["api"] == api]


def outcomes(emu: WeComEmulator, api: str) -> list[Any]:
    """Per call: the errcode, or the HTTP status / "dropped" when there was no JSON answer."""
    shown: list[Any] = []
    for entry in calls(emu, api):
        if entry["response"].get("dropped"):
            shown.append("dropped")
        elif entry.get("status") == 500:
            shown.append(500)
        else:
            shown.append(entry["errcode"])
    return shown


def run_at_once(target: Callable[[], None], count: int) -> None:
    threads = [threading.Thread(target=target) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)


def customer_wrote(emu: WeComEmulator) -> str:
    user = emu.add_customer(nickname="张三")
    emu.customer_text(emu.default_kfid, user, "你好", notify=False)
    return user


# --- tokens ----------------------------------------------------------------------------------------


def test_token_is_fetched_once_and_cached(emu: WeComEmulator, api: KfApi):
    user = emu.add_customer(nickname="张三")
    for _ in range(3):
        assert api.batchget_customer([user])[user]["nickname"] == "张三"
    assert len(calls(emu, "gettoken")) == 1
    assert api.token_fetches == 1


def test_concurrent_first_calls_fetch_one_token(emu: WeComEmulator, api: KfApi):
    user = emu.add_customer()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            api.batchget_customer([user])
        except BaseException as exc:
            errors.append(exc)

    run_at_once(worker, 24)
    assert errors == []
    assert len(calls(emu, "gettoken")) == 1
    emu.invalidate_tokens()  # now every thread's first call is refused with the same stale token
    run_at_once(worker, 24)
    assert errors == []
    assert len(calls(emu, "gettoken")) == 2


def test_invalidated_token_is_refreshed_once_and_the_call_succeeds(emu: WeComEmulator, api: KfApi):
    user = emu.add_customer()
    api.batchget_customer([user])
    emu.invalidate_tokens()
    assert user in api.batchget_customer([user])
    assert outcomes(emu, "kf/customer/batchget") == [0, 40014, 0]
    assert len(calls(emu, "gettoken")) == 2


def test_persistently_rejected_token_fails_after_one_refresh(emu: WeComEmulator, api: KfApi):
    emu.faults.invalidate_tokens_every = 0.0  # every issued token is expired at once (42001)
    with pytest.raises(KfAccessTokenInvalid) as info:
        api.batchget_customer([emu.add_customer()])
    assert info.value.errcode in (40014, 42001)
    assert len(calls(emu, "kf/customer/batchget")) == 2
    assert len(calls(emu, "gettoken")) == 2


def test_wrong_secret_is_a_credential_error_and_not_retried(emu: WeComEmulator):
    bad = KfApi(emu.corp_id, "not-the-secret-at-all", api_base=emu.api_base)
    with pytest.raises(KfCredentialError) as info:
        bad.batchget_customer(["wm1"])
    assert info.value.errcode == 40001
    assert len(calls(emu, "gettoken")) == 1
    assert calls(emu, "kf/customer/batchget") == []
    bad.close()


# --- retries -----------------------------------------------------------------------------------------


def test_rate_limit_burst_is_retried_then_succeeds(emu: WeComEmulator, api: KfApi):
    user = emu.add_customer()
    emu.faults.rate_limit_next(3, "kf/customer/batchget")
    assert user in api.batchget_customer([user])
    assert outcomes(emu, "kf/customer/batchget") == [45009, 45009, 45009, 0]


def test_retries_are_bounded_by_the_policy(emu: WeComEmulator):
    api = make_api(emu, attempts=3)
    emu.faults.rate_limit_next(10, "kf/customer/batchget")
    with pytest.raises(KfRateLimited):
        api.batchget_customer([emu.add_customer()])
    assert outcomes(emu, "kf/customer/batchget") == [45009, 45009, 45009]
    emu.faults.error_5xx_rate = 1.0
    with pytest.raises(KfNetworkError) as info:
        api.get_service_state(emu.default_kfid, emu.add_customer())
    assert info.value.http_status == 500
    assert outcomes(emu, "kf/service_state/get") == [500, 500, 500]
    api.close()


@pytest.mark.parametrize("knob", ["error_5xx_rate", "drop_rate"])
def test_server_errors_and_dropped_connections_are_retried(emu: WeComEmulator, knob: str):
    api = make_api(emu, attempts=12)
    user = emu.add_customer()
    api.batchget_customer([user])  # token first, so faults hit only the calls counted below
    emu.faults.seed(7)
    setattr(emu.faults, knob, 0.5)
    for _ in range(10):
        assert user in api.batchget_customer([user])
    setattr(emu.faults, knob, 0.0)
    seen = outcomes(emu, "kf/customer/batchget")[1:]
    failed = [o for o in seen if o in (500, "dropped")]
    assert len(failed) >= 1
    assert seen.count(0) == 10
    api.close()


def test_send_and_sync_are_tried_once_their_callers_retry(emu: WeComEmulator, api: KfApi):
    """One level of retries per operation: the delivery retries sends, the pull job retries pulls."""
    user = customer_wrote(emu)
    api.get_service_state(emu.default_kfid, user)  # token first
    emu.faults.drop_rate = 1.0
    with pytest.raises(KfNetworkError) as info:
        api.send_msg(user, emu.default_kfid, "text", {"content": "hi"}, msgid="m1_0")
    assert info.value.ambiguous and info.value.retryable
    assert outcomes(emu, "kf/send_msg") == ["dropped"]
    with pytest.raises(KfNetworkError):
        api.sync_msg(emu.default_kfid, None, None)
    assert outcomes(emu, "kf/sync_msg") == ["dropped"]
    with pytest.raises(KfNetworkError):
        api.get_service_state(emu.default_kfid, user)
    assert outcomes(emu, "kf/service_state/get") == [0] + ["dropped"] * 5  # inline: retried


def test_session_state_refusal_is_not_retried(emu: WeComEmulator, api: KfApi):
    user = customer_wrote(emu)
    emu.take_over(emu.default_kfid, user, notify=False)
    with pytest.raises(KfSessionStateInvalid) as info:
        api.send_msg(user, emu.default_kfid, "text", {"content": "hi"}, msgid="m2_0")
    assert info.value.errcode == 95018
    assert outcomes(emu, "kf/send_msg") == [95018]


def test_send_limit_is_not_retried(emu: WeComEmulator, api: KfApi):
    user = customer_wrote(emu)
    for part in range(5):
        assert (
            api.send_msg(user, emu.default_kfid, "text", {"content": f"p{part}"}, f"m3_{part}")
            == f"m3_{part}"
        )
    with pytest.raises(KfSendLimitReached):
        api.send_msg(user, emu.default_kfid, "text", {"content": "p5"}, msgid="m3_5")
    assert outcomes(emu, "kf/send_msg") == [0] * 5 + [95001]


def test_reused_msgid_raises_duplicate(emu: WeComEmulator, api: KfApi):
    user = customer_wrote(emu)
    assert api.send_msg(user, emu.default_kfid, "text", {"content": "一"}, msgid="m4_0") == "m4_0"
    with pytest.raises(KfDuplicateMsgId):
        api.send_msg(user, emu.default_kfid, "text", {"content": "一"}, msgid="m4_0")
    assert outcomes(emu, "kf/send_msg") == [0, 40058]
    assert [s.msgid for s in emu.sends_to(user)] == ["m4_0"]


# --- other calls ---------------------------------------------------------------------------------------


def test_sync_msg_pages_with_cursor(emu: WeComEmulator, api: KfApi):
    user = emu.add_customer()
    first = emu.customer_text(emu.default_kfid, user, "一", notify=False)
    page = api.sync_msg(emu.default_kfid, None, None)
    assert [m["msgid"] for m in page.msg_list] == [first]
    assert page.msg_list[0]["text"]["content"] == "一"
    assert page.next_cursor and not page.has_more
    second = emu.customer_text(emu.default_kfid, user, "二", notify=False)
    again = api.sync_msg(emu.default_kfid, page.next_cursor, None)
    assert [m["msgid"] for m in again.msg_list] == [second]


def test_bad_sync_token_is_not_retried(emu: WeComEmulator, api: KfApi):
    with pytest.raises(KfSyncTokenInvalid):
        api.sync_msg(emu.default_kfid, None, "ENCforged")
    assert outcomes(emu, "kf/sync_msg") == [95007]


def test_service_state_get_and_trans(emu: WeComEmulator, api: KfApi):
    user = customer_wrote(emu)
    assert api.get_service_state(emu.default_kfid, user).state == 0
    assert api.trans_service_state(emu.default_kfid, user, 1) is None
    state = api.get_service_state(emu.default_kfid, user)
    assert (state.state, state.servicer_userid) == (1, None)
    assert emu.service_state(emu.default_kfid, user) == 1


def test_send_msg_on_event_welcome_once(emu: WeComEmulator, api: KfApi):
    user = emu.add_customer()
    code = emu.enter_session(emu.default_kfid, user, notify=False)
    assert api.send_msg_on_event(code, "text", {"content": "欢迎"}, msgid="w1") == "w1"
    with pytest.raises(KfDuplicateMsgId):
        api.send_msg_on_event(code, "text", {"content": "欢迎"}, msgid="w1")
    assert [s.api for s in emu.sends_to(user)] == ["send_msg_on_event"]


# --- media ---------------------------------------------------------------------------------------------


def test_upload_and_download_round_trip(emu: WeComEmulator, api: KfApi):
    media_id = api.upload_media("image", "photo.png", PNG, "image/png")
    assert emu.uploaded_media(media_id).data == PNG
    got = api.download_media(media_id, max_bytes=len(PNG))
    assert got.data == PNG
    assert got.content_type == "image/png"
    assert got.filename == "photo.png"


def test_download_returns_the_raw_untrusted_filename(emu: WeComEmulator, api: KfApi):
    user = emu.add_customer()
    emu.customer_media(
        emu.default_kfid, user, "file", b"%PDF-1.4 report", filename="../../报告.pdf", notify=False
    )
    item = emu.messages(emu.default_kfid)[-1]
    got = api.download_media(item["file"]["media_id"], max_bytes=1024)
    assert got.data == b"%PDF-1.4 report"
    assert got.filename == "../../报告.pdf"


def test_download_over_max_bytes_is_a_media_error(emu: WeComEmulator, api: KfApi):
    media_id = api.upload_media("image", "photo.png", PNG, "image/png")
    with pytest.raises(KfMediaError, match="limit"):
        api.download_media(media_id, max_bytes=len(PNG) - 1)
    assert len(calls(emu, "media/get")) == 1


def test_unknown_media_id_and_bad_upload_are_media_errors(emu: WeComEmulator, api: KfApi):
    with pytest.raises(KfMediaError) as info:
        api.download_media("3nosuchmedia", max_bytes=1024)
    assert info.value.errcode == 40007
    with pytest.raises(KfMediaError):
        api.upload_media("image", "x.png", b"not an image at all", "image/png")
    with pytest.raises(ValueError):
        api.upload_media("sticker", "x", b"123456", "image/png")


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ('attachment; filename="a.txt"', "a.txt"),
        ("attachment; filename*=UTF-8''%E6%8A%A5%E5%91%8A.pdf", "报告.pdf"),
        ('attachment; filename="../../x"', "../../x"),
        ("attachment; filename=plain.bin", "plain.bin"),
        ('attachment; filename="\u00e6\u008a\u00a5.txt"', "报.txt"),  # UTF-8 read as latin-1
        ("inline", None),
    ],
)
def test_content_disposition_parsing(header: str, name: str | None):
    assert parse_content_disposition(header) == name


# --- secrets -------------------------------------------------------------------------------------------


def test_secrets_never_reach_logs_or_exception_texts(emu: WeComEmulator, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    api = make_api(emu, attempts=2)
    user = customer_wrote(emu)
    texts: list[str] = []
    api.send_msg(user, emu.default_kfid, "text", {"content": "hi"}, msgid="s1_0")
    emu.invalidate_tokens()
    emu.faults.error_5xx_rate = 1.0
    for attempt in (
        lambda: api.send_msg(user, emu.default_kfid, "text", {"content": "x"}, msgid="s1_1"),
        lambda: api.download_media("3nosuch", 10),
    ):
        with pytest.raises(KfError) as info:
            attempt()
        texts.append(f"{info.value!s} {info.value!r} {info.value.errmsg}")
    emu.faults.error_5xx_rate = 0.0
    emu.stop()  # now the URL with access_token= ends up in requests' connection error
    with pytest.raises(KfNetworkError) as info:
        api.get_service_state(emu.default_kfid, user)
    texts.append(str(info.value))
    # A logged traceback must not show the original requests exception (its text has the URL).
    texts.append("".join(traceback.format_exception(info.value)))
    assert "access_token=***" in texts[-1]
    secrets = emu.secrets()
    assert len(secrets) >= 4  # secret, callback token, AES key and at least one access token
    everything = caplog.text + "\n".join(texts)
    assert "access_token=***" in caplog.text  # request lines were logged, redacted
    for secret in secrets:
        assert secret not in everything
    api.close()


# --- proxies from the environment ----------------------------------------------------------------------


class _ForwardingProxy(BaseHTTPRequestHandler):
    """A plain HTTP forward proxy: records each request's method and path, then relays it."""

    server: _ProxyServer

    def _relay(self) -> None:
        target = urlsplit(self.path)  # a proxy receives the absolute URL
        self.server.seen.append(f"{self.command} {target.path}")  # no query: it holds the token
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        skip = {"host", "connection", "proxy-connection"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=5)
        try:
            upstream.request(self.command, target.path + "?" + target.query, body, headers)
            resp = upstream.getresponse()
            data = resp.read()
        finally:
            upstream.close()
        self.send_response(resp.status)
        for name, value in resp.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._relay()

    def do_POST(self) -> None:
        self._relay()

    def log_message(self, fmt: str, *args: Any) -> None:
        pass


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[str]


@contextlib.contextmanager
def forwarding_proxy() -> Iterator[_ProxyServer]:
    server = _ProxyServer(("127.0.0.1", 0), _ForwardingProxy)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_environment_proxy_is_read_once_and_used(emu: WeComEmulator, no_proxy_env: pytest.MonkeyPatch):
    with forwarding_proxy() as proxy:
        url = f"http://127.0.0.1:{proxy.server_address[1]}"
        no_proxy_env.setenv("HTTP_PROXY", url)
        no_proxy_env.setenv("HTTPS_PROXY", url)
        client = make_api(emu, attempts=1)
        no_proxy_env.delenv("HTTP_PROXY")  # read when the session was built, not per call
        try:
            session = client._t.session
            assert session.trust_env is False
            assert session.proxies == {"http": url, "https": url}
            user = customer_wrote(emu)
            assert client.get_service_state(emu.default_kfid, user).state == 0
        finally:
            client.close()
    assert proxy.seen == ["GET /cgi-bin/gettoken", "POST /cgi-bin/kf/service_state/get"]


def test_no_proxy_covering_loopback_reaches_the_emulator_directly(
    emu: WeComEmulator, no_proxy_env: pytest.MonkeyPatch
):
    with forwarding_proxy() as proxy:
        url = f"http://127.0.0.1:{proxy.server_address[1]}"
        no_proxy_env.setenv("HTTP_PROXY", url)
        no_proxy_env.setenv("NO_PROXY", "localhost,127.0.0.1")
        client = make_api(emu, attempts=1)
        try:
            assert client._t.session.proxies == {}
            user = customer_wrote(emu)
            assert client.get_service_state(emu.default_kfid, user).state == 0
        finally:
            client.close()
    assert proxy.seen == []
    assert len(calls(emu, "kf/service_state/get")) == 1
