"""Invariants 1 and 7 at the HTTP edge: verification, forged / malformed / oversized callbacks."""

from __future__ import annotations

import time

import requests


def _url(channel) -> str:
    return f"http://127.0.0.1:{channel.port}/wxkf/"


def test_url_verification_answers_the_plaintext_echo(emu, runner):
    runner.start()
    status, body, expected = emu.verify_url()
    assert status == 200
    assert body.decode("utf-8") == expected


def test_url_verification_without_trailing_slash(emu, runner):
    channel = runner.start()
    status, body, expected = emu.verify_url(f"http://127.0.0.1:{channel.port}/wxkf")
    assert (status, body.decode("utf-8")) == (200, expected)


def test_forged_signature_is_forbidden_and_schedules_nothing(emu, runner):
    channel = runner.start()
    params, body = emu.encrypt_callback(emu.default_kfid)
    forged = {**params, "msg_signature": "0" * 40}
    status, answer = emu.post_callback_raw(body, forged)
    assert status == 403
    assert b"Traceback" not in answer
    resp = requests.get(_url(channel), params={**forged, "echostr": "abc"}, timeout=5)
    assert resp.status_code == 403
    assert channel.kf.puller.schedules == 0


def test_malformed_bodies_are_bad_requests(emu, runner):
    channel = runner.start()
    params, _ = emu.encrypt_callback(emu.default_kfid)
    for body in (b"not xml at all", b"<xml><Encrypt></Encrypt></xml>", b"<xml><A>1</A>"):
        status, answer = emu.post_callback_raw(body, params)
        assert status == 400, body
        assert b"Traceback" not in answer
    # Missing query parameters.
    resp = requests.post(_url(channel), data=b"<xml/>", timeout=5)
    assert resp.status_code == 400
    # Entity declarations are refused before any parsing.
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Encrypt>&a;</Encrypt></xml>'
    assert emu.post_callback_raw(bomb, params)[0] == 400
    assert channel.kf.puller.schedules == 0


def test_undecryptable_payload_with_a_valid_signature_is_a_bad_request(emu, runner):
    from sandbox.emulator.crypto import signature

    runner.start()
    params, _ = emu.encrypt_callback(emu.default_kfid)
    garbage = "bm90IGFuIGFlcyBibG9jaw=="
    signed = {
        **params,
        "msg_signature": signature(emu.callback_token, params["timestamp"], params["nonce"], garbage),
    }
    status, answer = emu.post_callback_raw(f"<xml><Encrypt>{garbage}</Encrypt></xml>".encode(), signed)
    assert status == 400
    assert b"Traceback" not in answer


def test_oversized_body_is_refused(emu, runner):
    channel = runner.start()
    params, _ = emu.encrypt_callback(emu.default_kfid)
    status, _ = emu.post_callback_raw(b"<xml>" + b"a" * (70 * 1024) + b"</xml>", params)
    assert status == 413
    assert channel.kf.puller.schedules == 0


def test_a_valid_callback_is_acknowledged_and_pulls(emu, runner):
    channel = runner.start()
    assert emu.fire_callback(emu.default_kfid) == 200
    assert channel.wait_idle(10)
    assert channel.kf.puller.pulls_started == 1


def test_non_kf_event_is_acknowledged_and_ignored(emu, runner):
    channel = runner.start()
    plain = (
        f"<xml><ToUserName><![CDATA[{emu.corp_id}]]></ToUserName><CreateTime>{int(time.time())}</CreateTime>"
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event></xml>"
    )
    params, body = emu.crypto.encrypt_post(plain)
    status, answer = emu.post_callback_raw(body, params)
    assert status == 200
    assert answer == b"success"
    # The handler schedules synchronously before answering: nothing was scheduled.
    assert channel.kf.puller.schedules == 0
    assert emu.sends == []
