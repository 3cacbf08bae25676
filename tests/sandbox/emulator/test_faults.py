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


def _trans(api, kf, user, state, servicer=None):
    body = {"open_kfid": kf, "external_userid": user, "service_state": state}
    if servicer:
        body["servicer_userid"] = servicer
    return api.post("kf/service_state/trans", body)


def test_trans_errcode_refuses_every_trans_until_cleared(emu, api):
    kf, user = emu.default_kfid, emu.add_customer()
    emu.customer_text(kf, user, "转人工", notify=False)
    emu.trans_errcode = 95016
    assert emu.faults.trans_errcode == 95016
    assert _trans(api, kf, user, 3, "zhangsan") == {
        "errcode": 95016,
        "errmsg": "service state transition not allowed",
    }
    assert _trans(api, kf, user, 1)["errcode"] == 95016
    assert emu.service_state(kf, user) == 0  # nothing moved
    assert [(r.api, r.errcode, r.injected) for r in emu.rejections] == [
        ("kf/service_state/trans", 95016, True),
        ("kf/service_state/trans", 95016, True),
    ]
    assert emu.faults.counts["trans_refused"] == 2
    emu.trans_errcode = None
    assert _trans(api, kf, user, 3, "zhangsan")["errcode"] == 0


def test_trans_errcode_can_target_some_states_and_is_reset(emu, api):
    kf, user = emu.default_kfid, emu.add_customer()
    emu.customer_text(kf, user, "hi", notify=False)
    emu.faults.trans_errcode = 95019
    emu.faults.trans_errcode_states = {2, 3}
    assert _trans(api, kf, user, 1)["errcode"] == 0  # the bot still claims the session
    assert _trans(api, kf, user, 3, "zhangsan") == {"errcode": 95019, "errmsg": "servicer stopped"}
    assert _trans(api, kf, user, 2)["errcode"] == 95019
    assert emu.service_state(kf, user) == 1
    emu.faults.reset()
    assert emu.trans_errcode is None and emu.faults.trans_errcode_states is None
    assert _trans(api, kf, user, 2)["errcode"] == 0


def test_trans_errcode_must_be_an_int_or_none(emu):
    with pytest.raises(TypeError):
        emu.trans_errcode = "95016"
