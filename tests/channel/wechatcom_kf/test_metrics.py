"""The metrics module, the loopback metrics server and the callback port's /healthz and /readyz."""

from __future__ import annotations

import http.client
import socket
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from channel.wechatcom_kf.edge.callback import Response
from channel.wechatcom_kf.edge.http_server import CallbackServer
from channel.wechatcom_kf.metrics import (
    NO_METRICS,
    KfMetrics,
    Readiness,
    StateSources,
    StoreProbe,
    TokenWatch,
    errcode_label,
    observed_token_fetch,
    takeover_cause,
    token_watch,
)
from channel.wechatcom_kf.metrics_server import MetricsServer, ObservedCallbackHandler, metrics_port
from channel.wechatcom_kf.settings import load_kf_settings
from channel.wechatcom_kf.store import StoreUnavailable

TIMEOUT = 5.0
AES_KEY = "a" * 43


def samples(registry: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``registry`` by (name, sorted labels)."""
    text = generate_latest(registry).decode("utf-8")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(registry: Any, name: str, **labels: str) -> float | None:
    return samples(registry).get((name, tuple(sorted(labels.items()))))


# --- the metrics ------------------------------------------------------------------------------------


def test_metrics_off_accept_every_call_and_keep_nothing() -> None:
    assert NO_METRICS.registry is None
    NO_METRICS.callbacks.labels("200").inc()
    NO_METRICS.accepted.inc(3)
    NO_METRICS.reply_latency.observe(1.5)
    NO_METRICS.watch_state(StateSources(dict, lambda: 0, TokenWatch(), lambda: None))


def test_each_instance_has_its_own_registry() -> None:
    first, second = KfMetrics.enabled(), KfMetrics.enabled()
    first.accepted.inc()
    first.sends.labels("sent", "0").inc(2)
    first.reply_latency.observe(4.0)
    assert value(first.registry, "wechatcom_kf_messages_accepted_total") == 1
    assert value(first.registry, "wechatcom_kf_sends_total", result="sent", errcode="0") == 2
    assert value(first.registry, "wechatcom_kf_reply_latency_seconds_count") == 1
    assert value(first.registry, "wechatcom_kf_reply_latency_seconds_bucket", le="5.0") == 1
    assert value(second.registry, "wechatcom_kf_messages_accepted_total") == 0


def test_every_metric_is_named_with_the_prefix() -> None:
    metrics = KfMetrics.enabled()
    names = {name for name, _ in samples(metrics.registry)}
    for expected in (
        "wechatcom_kf_messages_finished_total",
        "wechatcom_kf_budget_exhausted_total",
        "wechatcom_kf_sessions_released_total",
        "wechatcom_kf_store_errors_total",
        "wechatcom_kf_sync_msg_pages_total",
        "wechatcom_kf_bot_latency_seconds_count",
    ):
        assert expected in names
    assert "process_start_time_seconds" in names or sys.platform != "linux"


def test_without_prometheus_client_metrics_on_fail_fast_naming_the_setting(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ValueError, match="wechatcom_kf_metrics_port"):
        KfMetrics.enabled()
    KfMetrics()  # off: the library is never imported


def test_label_values_are_bounded() -> None:
    assert errcode_label(95018) == "95018"
    assert errcode_label(123456789) == "other"
    assert errcode_label(None) == "none"
    assert errcode_label(0) == "0"
    assert takeover_cause("receptionist message") == "receptionist_message"
    assert takeover_cause("session_status_change 2") == "session_status_change"
    assert takeover_cause("send refused with 95018") == "send_refused"
    assert takeover_cause("handed off (keyword 转人工)") == "handoff"
    assert takeover_cause("service state 3") == "service_state"
    assert takeover_cause("anything else") == "other"


def test_state_is_read_at_every_scrape() -> None:
    metrics = KfMetrics.enabled()
    refused = {"bad signature": 2}
    pending = [3]
    watch = TokenWatch(clock=lambda: 1000.0)
    reason: list[str | None] = [None]
    metrics.watch_state(StateSources(lambda: refused, lambda: pending[0], watch, lambda: reason[0]))
    watch.succeeded()
    registry = metrics.registry
    assert value(registry, "wechatcom_kf_refusals_total", kind="bad signature") == 2
    assert value(registry, "wechatcom_kf_messages_pending") == 3
    assert value(registry, "wechatcom_kf_token_fetches_total", outcome="ok") == 1
    assert value(registry, "wechatcom_kf_token_last_success_timestamp_seconds") == 1000.0
    assert value(registry, "wechatcom_kf_ready") == 1
    refused["stale timestamp"], pending[0], reason[0] = 1, 0, "starting"
    watch.fail()
    assert value(registry, "wechatcom_kf_refusals_total", kind="stale timestamp") == 1
    assert value(registry, "wechatcom_kf_messages_pending") == 0
    assert value(registry, "wechatcom_kf_token_fetches_total", outcome="failed") == 1
    assert value(registry, "wechatcom_kf_ready") == 0


# --- token fetches ------------------------------------------------------------------------------------


class FakeTokenClient:
    def __init__(self) -> None:
        self.fail = False

    @observed_token_fetch
    def fetch_access_token(self) -> dict[str, str]:
        if self.fail:
            raise ConnectionError("down")
        return {"access_token": "t"}


def test_token_fetches_are_watched_per_client() -> None:
    client, other = FakeTokenClient(), FakeTokenClient()
    watch = token_watch(client)
    assert not watch.failing and watch.last_success is None
    client.fetch_access_token()
    assert watch.fetched == 1 and watch.last_success is not None and not watch.failing
    client.fail = True
    with pytest.raises(ConnectionError):
        client.fetch_access_token()
    assert watch.failed == 1 and watch.failing
    assert token_watch(other).fetched == 0 and not token_watch(other).failing
    client.fail = False
    client.fetch_access_token()
    assert not watch.failing and watch.fetched == 2


def test_the_transport_token_client_is_watched() -> None:
    import requests

    from channel.wechatcom_kf.api.transport import TokenClient

    session = requests.Session()
    client = TokenClient("corp", "secret", api_base="http://127.0.0.1:9/", timeout=0.5, http=session)
    with pytest.raises(requests.RequestException):
        client.fetch_access_token()  # nothing listens on port 9
    assert token_watch(client).failing
    session.close()


# --- readiness -----------------------------------------------------------------------------------------


class Values:
    def __init__(self) -> None:
        self.down = False
        self.writes = 0

    def set_value(self, key: str, value: str | None, ttl_seconds: float | None) -> None:
        if self.down:
            raise StoreUnavailable("disk full")
        self.writes += 1


def test_the_store_probe_reports_the_last_write_and_an_overdue_one() -> None:
    now = [0.0]
    errors: list[int] = []
    store = Values()
    probe = StoreProbe(store, "health:x", 15.0, on_error=lambda: errors.append(1), clock=lambda: now[0])
    assert probe.problem() is None  # not checked yet: fresh
    probe.check()
    assert probe.problem() is None and store.writes == 1
    store.down = True
    probe.check()
    assert probe.problem() == "state store not writable" and errors == [1]
    store.down = False
    probe.check()
    assert probe.problem() is None
    now[0] += probe.stale_after + 1
    assert probe.problem() == "state store check overdue"


def test_readiness_says_why_in_order() -> None:
    store = Values()
    probe = StoreProbe(store, "health:x", 15.0)
    watch = TokenWatch()
    readiness = Readiness(probe, watch)
    assert readiness.reason() == "starting"
    readiness.started.set()
    assert readiness.reason() is None
    watch.fail()
    assert readiness.reason() == "no WeCom access_token: the last fetch failed"
    store.down = True
    probe.check()
    assert readiness.reason() == "state store not writable"
    readiness.stopping.set()
    assert readiness.reason() == "shutting down"


# --- the metrics server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, path: str, method: str = "GET") -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request(method, path)
        answer = conn.getresponse()
        return answer.status, answer.reason, answer.read().decode("utf-8")
    finally:
        conn.close()


def test_the_metrics_server_serves_its_registry_on_loopback_and_stops() -> None:
    metrics = KfMetrics.enabled()
    metrics.finished.inc()
    server = MetricsServer(metrics.registry, "127.0.0.1", free_port())
    assert server.start()
    try:
        status, _, text = get(server.port, "/metrics")
        assert status == 200 and "wechatcom_kf_messages_finished_total 1.0" in text
    finally:
        server.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT):
        pass
    server.stop()  # twice is fine


def test_a_busy_metrics_port_is_logged_and_the_channel_goes_on(caplog) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = MetricsServer(KfMetrics.enabled().registry, "127.0.0.1", busy.getsockname()[1])
        assert not server.start()
    assert "wechatcom_kf_metrics_port" in caplog.text
    server.stop()


def test_the_metrics_port_setting() -> None:
    settings = load_kf_settings({}, environ={})
    assert settings.wechatcom_kf_metrics_port == 0  # off by default
    assert settings.wechatcom_kf_metrics_host == "127.0.0.1"
    env = {"WECHATCOM_KF_METRICS_PORT": "9464", "WECHATCOM_KF_METRICS_HOST": "0.0.0.0"}
    settings = load_kf_settings({}, environ=env)
    assert (settings.wechatcom_kf_metrics_port, settings.wechatcom_kf_metrics_host) == (9464, "0.0.0.0")
    assert metrics_port(0, 9899) == 0 and metrics_port(9464, 9899) == 9464
    with pytest.raises(ValueError, match="callback port"):
        metrics_port(9899, 9899)
    with pytest.raises(ValueError, match="wechatcom_kf_metrics_port"):
        metrics_port(70000, 9899)


# --- the callback handler and the callback port's probes ---------------------------------------------


def test_the_observed_handler_counts_answers_by_status_and_reports_readiness() -> None:
    metrics = KfMetrics.enabled()
    handler = ObservedCallbackHandler(
        "token", AES_KEY, "corp", lambda kfid, token: None, metrics=metrics, readiness=lambda: "starting"
    )
    assert handler.handle_get({}).status == 400
    assert handler.handle_post({}, b"<xml/>").status == 400
    assert value(metrics.registry, "wechatcom_kf_callbacks_total", status="400") == 2
    assert handler.not_ready_reason() == "starting"


class ProbedHandler:
    """The callback handler's surface plus readiness."""

    max_body_bytes = 1024

    def __init__(self) -> None:
        self.reason: str | None = None
        self.calls = 0

    def handle_get(self, query: Mapping[str, str]) -> Response:
        self.calls += 1
        return Response(200, "echo")

    def handle_post(self, query: Mapping[str, str], body: bytes) -> Response:
        self.calls += 1
        return Response(200, "success")

    def not_ready_reason(self) -> str | None:
        return self.reason


@pytest.fixture
def probed() -> Iterator[tuple[CallbackServer, ProbedHandler]]:
    handler = ProbedHandler()
    server = CallbackServer(handler, "127.0.0.1", 0, 16)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    assert server.ready.wait(TIMEOUT)
    yield server, handler
    server.stop()
    thread.join(TIMEOUT)


def test_healthz_and_readyz_answer_get_and_head(probed) -> None:
    server, handler = probed
    assert get(server.port, "/healthz") == (200, "OK", "ok")
    assert get(server.port, "/healthz", "HEAD") == (200, "OK", "")
    assert get(server.port, "/readyz?verbose=1") == (200, "OK", "ready")
    handler.reason = "state store not writable"
    assert get(server.port, "/readyz") == (503, "Service Unavailable", "not ready: state store not writable")
    assert get(server.port, "/readyz", "HEAD") == (503, "Service Unavailable", "")
    assert get(server.port, "/healthz")[0] == 200  # alive though not ready
    assert handler.calls == 0  # probes never reach the callback logic


def test_probes_refuse_other_methods_and_metrics_are_not_on_the_callback_port(probed) -> None:
    server, _ = probed
    assert get(server.port, "/healthz", "POST")[0] == 405
    assert get(server.port, "/metrics")[0] == 404
    refused = server.metrics()["refused"]
    assert refused["method not allowed"] == 1 and refused["unknown path"] == 1


class PlainHandler:
    """A handler that knows nothing of readiness."""

    max_body_bytes = 1024

    def handle_get(self, query: Mapping[str, str]) -> Response:
        return Response(200, "echo")

    def handle_post(self, query: Mapping[str, str], body: bytes) -> Response:
        return Response(200, "success")


def test_a_handler_without_readiness_is_always_ready() -> None:
    server = CallbackServer(PlainHandler(), "127.0.0.1", 0, 16)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    assert server.ready.wait(TIMEOUT)
    try:
        assert get(server.port, "/readyz") == (200, "OK", "ready")
    finally:
        server.stop()
        thread.join(TIMEOUT)
