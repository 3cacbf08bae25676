"""gettoken and the access_token checks every API makes (41001 / 40014 / 42001 / 40001)."""

from __future__ import annotations

import time

import pytest
import requests


def test_gettoken_rejects_a_wrong_secret(emu, api):
    answer = requests.get(
        emu.api_base + "gettoken", params={"corpid": emu.corp_id, "corpsecret": "nope"}
    ).json()
    assert answer["errcode"] == 40001
    assert "access_token" not in answer


def test_gettoken_issues_a_token_that_the_apis_accept(emu, api):
    token = api.fetch_token()
    answer = requests.get(
        emu.api_base + "gettoken", params={"corpid": emu.corp_id, "corpsecret": emu.secret}
    ).json()
    assert answer["expires_in"] > 7000
    assert answer["access_token"] == token  # the same token while it is valid
    assert api.post("kf/account/list", {})["errcode"] == 0


def test_missing_token_is_41001(emu):
    answer = requests.post(emu.api_base + "kf/account/list", json={}).json()
    assert answer["errcode"] == 41001


def test_unknown_token_is_40014(emu, api):
    assert api.post("kf/account/list", {}, token="forged")["errcode"] == 40014


def test_invalidate_tokens_makes_issued_tokens_40014_and_a_new_one_works(emu, api):
    old = api.fetch_token()
    emu.invalidate_tokens()
    assert api.post("kf/account/list", {}, token=old)["errcode"] == 40014
    new = api.fetch_token()
    assert new != old
    assert api.post("kf/account/list", {}, token=new)["errcode"] == 0


def test_invalidate_tokens_every_expires_tokens_with_42001(emu, api):
    emu.faults.invalidate_tokens_every = 0.2
    token = api.fetch_token()
    time.sleep(0.3)
    assert api.post("kf/account/list", {}, token=token)["errcode"] == 42001
    fresh = api.fetch_token()
    assert fresh != token
    assert api.post("kf/account/list", {}, token=fresh)["errcode"] == 0


def test_token_checks_are_recorded_as_rejections(emu, api):
    api.post("kf/account/list", {}, token="forged")
    assert [(r.api, r.errcode) for r in emu.rejections] == [("kf/account/list", 40014)]


def test_stop_closes_kept_alive_connections_and_restart_keeps_state(emu, api):
    token = api.fetch_token()  # the session now holds a kept-alive connection
    emu.stop()
    with pytest.raises(requests.ConnectionError):
        api.post("kf/account/list", {}, token=token)
    emu.start()  # same port, same state
    assert api.post("kf/account/list", {}, token=token)["errcode"] == 0
