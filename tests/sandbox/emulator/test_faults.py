"""Fault knobs: 45009 bursts, 5xx fraction, dropped connections, latency, determinism."""

from __future__ import annotations

import pytest
import requests


def test_rate_limit_next_answers_45009_exactly_n_times(emu, api):
    api.fetch_token()
    emu.faults.rate_limit_next(3)
    codes = [api.post("kf/account/list", {})["errcode"] for _ in range(5)]
    assert codes == [45009, 45009, 45009, 0, 0]
    assert [r.injected for r in emu.rejections] == [True, True, True]


def test_rate_limit_can_target_one_path(emu, api):
    api.fetch_token()
    emu.faults.rate_limit_next(1, path="kf/sync_msg")
    assert api.post("kf/account/list", {})["errcode"] == 0
    assert api.post("kf/sync_msg", {"open_kfid": emu.default_kfid})["errcode"] == 45009


def test_5xx_rate_is_roughly_honoured_and_deterministic_with_a_seed(emu, api):
    api.fetch_token()
    emu.faults.seed(7)
    emu.faults.error_5xx_rate = 0.3
    statuses = [
        requests.post(
            emu.api_base + "kf/account/list", params={"access_token": api.access_token}, json={}
        ).status_code
        for _ in range(100)
    ]
    assert 15 <= statuses.count(500) <= 45
    assert set(statuses) == {200, 500}
    emu.faults.seed(7)
    again = [
        requests.post(
            emu.api_base + "kf/account/list", params={"access_token": api.access_token}, json={}
        ).status_code
        for _ in range(100)
    ]
    assert again == statuses


def test_dropped_connection_is_closed_unanswered(emu, api):
    api.fetch_token()
    emu.faults.drop_rate = 1.0
    with pytest.raises(requests.ConnectionError):
        requests.post(
            emu.api_base + "kf/account/list", params={"access_token": api.access_token}, json={}, timeout=5
        )
    emu.faults.drop_rate = 0.0
    assert api.post("kf/account/list", {})["errcode"] == 0
    assert emu.faults.counts["dropped"] == 1


def test_latency_is_applied_per_path(emu, api):
    api.fetch_token()
    emu.faults.latency = {"kf/account/list": 0.05}
    api.post("kf/account/list", {})
    api.post("kf/service_state/get", {})
    delays = {e["api"]: e.get("delay") for e in emu.protocol_log() if e["kind"] == "api"}
    assert delays == {"gettoken": None, "kf/account/list": 0.05, "kf/service_state/get": None}
