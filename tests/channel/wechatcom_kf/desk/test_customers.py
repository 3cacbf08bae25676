"""CustomerDirectory against the emulator over real HTTP: cached, and batched while a call is out."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from channel.wechatcom_kf.api import KfApi
from channel.wechatcom_kf.desk.customers import CustomerDirectory, CustomerInfo
from channel.wechatcom_kf.retry import RetryPolicy
from sandbox.emulator import WeComEmulator


@pytest.fixture
def api(emu: WeComEmulator) -> Iterator[KfApi]:
    quick = RetryPolicy(base=0.001, cap=0.01, max_attempts=2)
    client = KfApi(emu.corp_id, emu.secret, api_base=emu.api_base, timeout=5.0, quick=quick)
    yield client
    client.close()


def batchgets(emu: WeComEmulator) -> list[dict[str, Any]]:
    return [e for e in emu.protocol_log() if e["kind"] == "api" and e["api"] == "kf/customer/batchget"]


def lookup_all(directory: CustomerDirectory, users: list[str]) -> dict[str, CustomerInfo | None]:
    """Every user looked up from its own thread, all released at once (customers' workers)."""
    start = threading.Barrier(len(users))
    found: dict[str, CustomerInfo | None] = {}

    def one(user: str) -> None:
        start.wait()
        found[user] = directory.lookup(user)

    threads = [threading.Thread(target=one, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return found


def test_one_lookup_is_one_call_and_then_cached(emu: WeComEmulator, api: KfApi) -> None:
    user = emu.add_customer("张三", gender=1)
    directory = CustomerDirectory(api)
    assert directory.lookup(user) == CustomerInfo(user, "张三", 1)
    assert directory.lookup(user) == CustomerInfo(user, "张三", 1)
    assert len(batchgets(emu)) == 1


def test_customers_asked_for_during_a_call_share_the_next_one(emu: WeComEmulator, api: KfApi) -> None:
    users = [emu.add_customer(f"客户{i}") for i in range(150)]
    emu.faults.latency = {"kf/customer/batchget": 0.2}  # the calls overlap the threads' arrival
    directory = CustomerDirectory(api)
    found = lookup_all(directory, users)
    calls = batchgets(emu)
    sizes = [len(c["request"]["body"]["external_userid_list"]) for c in calls]
    print(f"150 concurrent lookups: {len(calls)} batchget calls of {sizes}")
    assert {user: info.nickname if info else None for user, info in found.items()} == {
        user: f"客户{i}" for i, user in enumerate(users)
    }
    assert max(sizes) <= 100
    assert len(calls) <= 5  # one call per customer would be 150
    assert sum(sizes) == 150  # nobody asked twice


def test_a_failed_call_answers_its_whole_batch_and_is_not_repeated(emu: WeComEmulator, api: KfApi) -> None:
    users = [emu.add_customer(f"客户{i}") for i in range(20)]
    emu.faults.error_5xx_rate = 1.0
    directory = CustomerDirectory(api)
    found = lookup_all(directory, users)
    failed_calls = len(batchgets(emu))
    emu.faults.error_5xx_rate = 0.0
    assert found == dict.fromkeys(users)  # no nickname, no exception: the turn goes on without it
    assert all(directory.lookup(user) is None for user in users)  # remembered for a few minutes
    assert len(batchgets(emu)) == failed_calls
