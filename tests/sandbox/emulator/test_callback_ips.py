"""GET cgi-bin/getcallbackip over real HTTP: the configured list, the token check, the fault knob."""

from __future__ import annotations

import ipaddress
import socket

import pytest
import requests

from sandbox.emulator import WeComEmulator


def _answer(api, **params: str) -> dict:
    resp = api.get("getcallbackip", **params)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    return resp.json()


def test_gettoken_then_getcallbackip_answers_the_default_loopback_list(emu: WeComEmulator, api):
    token = api.fetch_token()
    answer = _answer(api, access_token=token)
    assert answer == {"errcode": 0, "errmsg": "ok", "ip_list": ["127.0.0.2", "127.0.0.3"]}
    for entry in answer["ip_list"]:  # loopback, and not the address every local client uses
        assert ipaddress.ip_address(entry).is_loopback
        assert entry != "127.0.0.1"
    calls = [e for e in emu.protocol_log() if e["kind"] == "api" and e["api"] == "getcallbackip"]
    assert [(c["request"]["method"], c["errcode"], c["status"]) for c in calls] == [("GET", 0, 200)]
    assert token not in str(calls)


def test_the_default_addresses_can_be_bound_as_a_client_source(emu: WeComEmulator, api):
    """What the defaults are for: a test connects *from* one of them, as WeCom's server would."""
    source = _answer(api)["ip_list"][0]
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        try:
            client = socket.create_connection(listener.getsockname(), timeout=5, source_address=(source, 0))
        except OSError as exc:  # only Linux routes all of 127/8 to lo by default
            pytest.skip(f"cannot bind {source}: {exc}")
        with client:
            peer, _ = listener.accept()
            with peer:
                assert peer.getpeername()[0] == source
    finally:
        listener.close()


def test_the_list_is_configurable_and_answered_as_given(emu: WeComEmulator, api):
    emu.callback_ips = ["101.226.103.*", "101.226.62.0/24", "182.254.11.176"]
    assert _answer(api)["ip_list"] == ["101.226.103.*", "101.226.62.0/24", "182.254.11.176"]
    emu.callback_ips = []
    assert _answer(api) == {"errcode": 0, "errmsg": "ok", "ip_list": []}


def test_access_token_is_required(emu: WeComEmulator, api):
    resp = requests.get(emu.api_base + "getcallbackip", timeout=5)
    assert resp.json()["errcode"] == 41001
    assert _answer(api, access_token="not-a-token")["errcode"] == 40014
    assert [r.errcode for r in emu.rejections] == [41001, 40014]


def test_only_get_is_served(emu: WeComEmulator, api):
    assert api.post("getcallbackip", {})["errcode"] == 40058


def test_fault_knob_makes_it_fail_until_cleared(emu: WeComEmulator, api):
    api.fetch_token()
    emu.faults.callback_ip_errcode = -1
    answer = _answer(api)
    assert answer["errcode"] == -1
    assert "ip_list" not in answer
    assert [(r.api, r.errcode, r.injected) for r in emu.rejections] == [("getcallbackip", -1, True)]
    assert emu.faults.counts["callback_ip_refused"] == 1
    emu.faults.callback_ip_errcode = 45009
    assert _answer(api)["errcode"] == 45009
    emu.faults.reset()
    assert emu.faults.callback_ip_errcode is None
    assert _answer(api)["errcode"] == 0
    assert emu.faults.counts["callback_ip_refused"] == 2


def test_generic_fault_knobs_apply_to_the_path(emu: WeComEmulator, api):
    api.fetch_token()
    emu.faults.rate_limit_next(1, path="getcallbackip")
    assert _answer(api)["errcode"] == 45009
    assert _answer(api)["errcode"] == 0
    emu.faults.error_5xx_rate = 1.0
    assert api.get("getcallbackip").status_code == 500
