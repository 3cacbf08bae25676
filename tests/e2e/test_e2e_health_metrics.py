"""Health, readiness and metrics of a running channel, over real HTTP against the emulator:

- ``/healthz`` and ``/readyz`` on the callback port answer GET and HEAD; ``/readyz`` turns 503 with its
  reason when the state store cannot be written (the disk is full) and 200 again once it can;
- after one customer message the loopback metrics server shows the callback, the accepted and
  finished message, the accepted send and both latencies; the public callback port has no /metrics.
"""

from __future__ import annotations

import errno
import http.client
import threading
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from channel.wechatcom_kf import files, service
from sandbox.emulator import WeComEmulator
from sandbox.harness import free_port, wait_until
from tests.e2e.e2e_helpers import ChannelRunner

TIMEOUT = 5.0
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def request(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request(method, path)
        answer = conn.getresponse()
        return answer.status, answer.read().decode("utf-8")
    finally:
        conn.close()


def scrape(port: int) -> Samples:
    status, text = request(port, "/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def channel(emu: WeComEmulator, runner: ChannelRunner, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(service, "STORE_CHECK_SECONDS", 0.1)  # the probe behind /readyz, every 0.1 s
    return runner.start(wechatcom_kf_metrics_port=free_port())


def test_health_and_readiness_answer_on_the_callback_port(channel: Any) -> None:
    port = channel.port
    assert request(port, "/healthz") == (200, "ok")
    assert request(port, "/healthz", "HEAD") == (200, "")
    assert wait_until(lambda: request(port, "/readyz") == (200, "ready"), TIMEOUT)
    assert request(port, "/readyz", "HEAD") == (200, "")
    assert request(port, "/metrics")[0] == 404  # never on the public port


def test_one_message_shows_in_the_metrics(emu: WeComEmulator, channel: Any) -> None:
    metrics_port = channel.kf.metrics_server.port
    assert channel.kf.metrics_server.host == "127.0.0.1"
    user = emu.add_customer("指标")
    emu.customer_text(emu.default_kfid, user, "你好")
    emu.wait_for_sends(1, timeout=10)
    assert channel.wait_idle(10)
    samples = scrape(metrics_port)
    assert sample(samples, "wechatcom_kf_callbacks_total", status="200") >= 1
    assert sample(samples, "wechatcom_kf_pulls_total", outcome="ok") >= 1
    assert sample(samples, "wechatcom_kf_sync_msg_pages_total") >= 1
    assert sample(samples, "wechatcom_kf_messages_accepted_total") >= 1
    assert sample(samples, "wechatcom_kf_messages_finished_total") >= 1
    assert sample(samples, "wechatcom_kf_messages_pending") == 0
    assert sample(samples, "wechatcom_kf_sends_total", result="sent", errcode="0") == 1
    assert sample(samples, "wechatcom_kf_bot_latency_seconds_count") == 1
    assert sample(samples, "wechatcom_kf_reply_latency_seconds_count") == 1
    assert sample(samples, "wechatcom_kf_reply_latency_seconds_sum") < 60
    assert sample(samples, "wechatcom_kf_token_fetches_total", outcome="ok") >= 1
    assert sample(samples, "wechatcom_kf_token_last_success_timestamp_seconds") > 0
    assert sample(samples, "wechatcom_kf_ready") == 1
    assert request(channel.port, "/metrics")[0] == 404


def test_readyz_is_503_while_the_state_store_cannot_be_written(
    channel: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = channel.port
    assert wait_until(lambda: request(port, "/readyz")[0] == 200, TIMEOUT)

    def disk_full(fd: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(files, "write_all", disk_full)
        assert wait_until(lambda: request(port, "/readyz")[0] == 503, TIMEOUT, interval=0.05)
        assert request(port, "/readyz") == (503, "not ready: state store not writable")
        assert request(port, "/readyz", "HEAD") == (503, "")
        assert request(port, "/healthz") == (200, "ok")  # alive: the loop answers
        samples = scrape(channel.kf.metrics_server.port)
        assert sample(samples, "wechatcom_kf_ready") == 0
        assert sample(samples, "wechatcom_kf_store_errors_total") >= 1
    assert wait_until(lambda: request(port, "/readyz") == (200, "ready"), TIMEOUT, interval=0.05)


def test_on_stop_readyz_turns_503_while_the_port_still_serves_then_it_closes(
    emu: WeComEmulator, runner: ChannelRunner
) -> None:
    channel = runner.start(wechatcom_kf_drain_seconds=1.5)
    port = channel.port
    assert wait_until(lambda: request(port, "/readyz") == (200, "ready"), TIMEOUT)
    stopping = threading.Thread(target=channel.stop, daemon=True)
    stopping.start()
    # A load balancer's probe sees "not ready" first; WeCom's callbacks are still answered meanwhile.
    assert wait_until(lambda: request(port, "/readyz") == (503, "not ready: shutting down"), TIMEOUT, 0.05)
    assert request(port, "/healthz") == (200, "ok")
    assert emu.verify_url(f"http://127.0.0.1:{port}/wxkf/")[0] == 200
    stopping.join(15)
    assert not stopping.is_alive()
    with pytest.raises(OSError):
        request(port, "/healthz")
