"""Invariants 2 and 3 across instances: two channels sharing a real Redis store, callbacks spread
over both, every message answered exactly once."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid

import pytest
import redis

from channel.wechatcom_kf.store import RedisStore
from channel.wechatcom_kf.wechatcom_kf_channel import WechatComKfChannel
from tests.e2e.e2e_helpers import answers_per_message


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt install redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
        for _ in range(100):  # bounded: up to ~5 s
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        proc.terminate()
        proc.wait(5)


def test_two_instances_share_the_work_without_duplicates(emu, runner, redis_url):
    prefix = f"t{uuid.uuid4().hex[:8]}:"

    class SharedStoreChannel(WechatComKfChannel):
        def _make_store(self, settings):
            return RedisStore(redis_url, prefix=prefix)

    first = runner.start(SharedStoreChannel)
    second = runner.start(SharedStoreChannel)
    urls = [f"http://127.0.0.1:{c.port}/wxkf/" for c in (first, second)]
    kf = emu.default_kfid
    users = [emu.add_customer(f"客户{i}") for i in range(20)]
    inbound: list[str] = []
    for round_no in range(3):
        inbound += [emu.customer_text(kf, user, f"问题{round_no}", notify=False) for user in users]
        for url in urls:  # WeCom may deliver to either instance behind a load balancer
            assert emu.fire_callback(kf, url=url) == 200
    emu.wait_for_sends(60, timeout=60)
    assert first.wait_idle(20) and second.wait_idle(20)
    counts = answers_per_message(emu, inbound)
    assert [m for m, n in counts.items() if n != 1] == []
    assert len(emu.sends) == 60
    assert first.puller.pulls_started + second.puller.pulls_started >= 2
