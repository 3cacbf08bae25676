"""Refused credentials back off: against the emulator over real HTTP, a wrong secret is reported once
and asks ``gettoken`` once per backoff interval, however many calls want a token (WeCom blocks an IP
that repeats wrong secrets for an hour); calls fail fast with a retryable ("not now") error."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from channel.wechatcom_kf.api import KfApi, transport
from channel.wechatcom_kf.errors import KfCredentialError, KfError
from channel.wechatcom_kf.retry import RetryPolicy
from sandbox.emulator import WeComEmulator

TRANSPORT_LOGGER = "channel.wechatcom_kf.api.transport"
WRONG_SECRET = "not-the-secret-of-this-corp"


def make_api(api_base: str, corp_id: str, secret: str) -> KfApi:
    quick = RetryPolicy(base=0.001, cap=0.01, max_attempts=5)  # inline retries would be quick
    return KfApi(corp_id, secret, api_base=api_base, timeout=5.0, quick=quick)


@pytest.fixture
def bad_api(emu: WeComEmulator) -> Iterator[KfApi]:
    client = make_api(emu.api_base, emu.corp_id, WRONG_SECRET)
    yield client
    client.close()


def api_calls(emu: WeComEmulator, api: str | None = None) -> list[dict[str, Any]]:
    return [e for e in emu.protocol_log() if e["kind"] == "api" and (api is None or e["api"] == api)]


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == TRANSPORT_LOGGER and r.levelno >= logging.WARNING]


def burst(api: KfApi, threads: int = 12, calls_each: int = 5) -> list[BaseException]:
    """Calls of every kind from many threads at once; what each raised."""
    kinds: list[Callable[[], object]] = [
        lambda: api.sync_msg("wkACCOUNT", None, None),
        lambda: api.send_msg("wmUSER", "wkACCOUNT", "text", {"content": "hi"}, "msgid-1"),
        lambda: api.get_service_state("wkACCOUNT", "wmUSER"),
        lambda: api.batchget_customer(["wmUSER"]),
        lambda: api.get_callback_ips(),
    ]
    raised: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        for i in range(calls_each):
            try:
                kinds[i % len(kinds)]()
            except BaseException as exc:
                with lock:
                    raised.append(exc)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=30)
    return raised


def test_wrong_secret_burst_asks_gettoken_at_most_twice_and_warns_once(
    emu: WeComEmulator, bad_api: KfApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=TRANSPORT_LOGGER)
    started = time.monotonic()
    raised = burst(bad_api) + burst(bad_api)
    assert time.monotonic() - started < 10  # failing fast, not sleeping through inline retries
    assert len(raised) == 2 * 12 * 5
    assert all(isinstance(exc, KfCredentialError) and exc.errcode == 40001 for exc in raised)
    assert all(isinstance(exc, KfError) and exc.retryable for exc in raised)  # "not now": callers retry later
    assert len(api_calls(emu, "gettoken")) <= 2
    assert api_calls(emu) == api_calls(emu, "gettoken")  # nothing else was sent without a token
    [warning] = warnings_of(caplog)
    text = warning.getMessage()
    assert "40001" in text and "wechatcom_kf_secret" in text and "wechatcom_corp_id" in text
    assert WRONG_SECRET not in caplog.text


def test_after_the_interval_one_more_try_then_a_longer_wait(
    emu: WeComEmulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(transport, "CREDENTIALS", RetryPolicy(base=0.4, cap=0.8))
    caplog.set_level(logging.INFO, logger=TRANSPORT_LOGGER)
    api = make_api(emu.api_base, emu.corp_id, WRONG_SECRET)
    try:
        burst(api, threads=4, calls_each=3)
        assert len(api_calls(emu, "gettoken")) == 1
        time.sleep(0.45)  # the first interval is 0.2-0.4 s
        burst(api, threads=4, calls_each=3)
        assert len(api_calls(emu, "gettoken")) == 2  # one more try for the whole burst
        burst(api, threads=4, calls_each=3)
        assert len(api_calls(emu, "gettoken")) == 2  # the second interval (0.4-0.8 s) has begun
        assert len(warnings_of(caplog)) == 1  # the repeat is INFO: reported once
    finally:
        api.close()


def test_a_fix_in_the_console_is_picked_up_by_the_next_try(
    emu: WeComEmulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(transport, "CREDENTIALS", RetryPolicy(base=0.2, cap=0.2))
    caplog.set_level(logging.INFO, logger=TRANSPORT_LOGGER)
    api = make_api(emu.api_base, emu.corp_id, WRONG_SECRET)
    user = emu.add_customer(nickname="张三")
    try:
        with pytest.raises(KfCredentialError):
            api.batchget_customer([user])
        emu.secret = WRONG_SECRET  # as if the admin made this the app's secret
        time.sleep(0.25)
        assert api.batchget_customer([user])[user]["nickname"] == "张三"
        assert "accepted the credentials" in caplog.text
    finally:
        api.close()


def test_a_correct_secret_after_a_restart_works_at_once(emu: WeComEmulator, bad_api: KfApi) -> None:
    burst(bad_api, threads=2, calls_each=2)
    assert len(api_calls(emu, "gettoken")) == 1
    fixed = make_api(emu.api_base, emu.corp_id, emu.secret)  # the restarted process with the fix
    user = emu.add_customer(nickname="李四")
    try:
        assert fixed.batchget_customer([user])[user]["nickname"] == "李四"
    finally:
        fixed.close()
    assert [e["errcode"] for e in api_calls(emu, "gettoken")] == [40001, 0]


# --- the other refusals, from a stub that answers gettoken only ------------------------------------------


class _Refusing(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server: _RefusingServer = self.server  # type: ignore[assignment]
        server.requests.append(self.path.split("?", 1)[0])
        body = json.dumps({"errcode": server.errcode, "errmsg": server.errmsg}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: Any) -> None:
        pass


class _RefusingServer(ThreadingHTTPServer):
    daemon_threads = True
    errcode: int
    errmsg: str
    requests: list[str]


@contextlib.contextmanager
def refusing_server(errcode: int, errmsg: str) -> Iterator[_RefusingServer]:
    server = _RefusingServer(("127.0.0.1", 0), _Refusing)
    server.errcode, server.errmsg, server.requests = errcode, errmsg, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize(
    ("errcode", "errmsg", "fix"),
    [
        (40013, "invalid corpid", "wechatcom_corp_id"),
        (48002, "api forbidden", "可调用接口的应用"),
        (60020, "not allow to access from your ip, from ip: 203.0.113.7", "企业可信IP"),
    ],
)
def test_other_credential_refusals_back_off_too(
    errcode: int, errmsg: str, fix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=TRANSPORT_LOGGER)
    with refusing_server(errcode, errmsg) as server:
        api = make_api(f"http://127.0.0.1:{server.server_port}/cgi-bin/", "ww-corp", "some-secret")
        try:
            raised = burst(api, threads=6, calls_each=4)
        finally:
            api.close()
    assert server.requests == ["/cgi-bin/gettoken"]
    assert {getattr(exc, "errcode", None) for exc in raised} == {errcode}
    [warning] = warnings_of(caplog)
    assert fix in warning.getMessage()
