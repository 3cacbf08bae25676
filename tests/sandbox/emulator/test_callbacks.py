"""Callbacks: encrypted and signed (checked with wechatpy), fresh Token, retries, verify_url, raw."""

from __future__ import annotations

import requests
import xmltodict


def test_customer_message_fires_one_decryptable_callback(emu, api, receiver):
    kf, user = emu.default_kfid, emu.add_customer()
    emu.customer_text(kf, user, "你好")
    (payload,) = receiver.wait(1)
    assert payload["ToUserName"] == emu.corp_id
    assert (payload["MsgType"], payload["Event"], payload["OpenKfId"]) == ("event", "kf_msg_or_event", kf)
    page = api.post("kf/sync_msg", {"open_kfid": kf, "token": payload["Token"]})
    assert page["errcode"] == 0 and page["msg_list"][0]["text"]["content"] == "你好"


def test_envelope_carries_corp_id_and_signature_params(emu, receiver):
    assert emu.fire_callback(emu.default_kfid) == 200
    query, body = receiver.raw[0]
    assert set(query) == {"msg_signature", "timestamp", "nonce"}
    envelope = xmltodict.parse(body)["xml"]
    assert envelope["ToUserName"] == emu.corp_id and envelope["Encrypt"]


def test_every_callback_has_a_fresh_token(emu, receiver):
    emu.fire_callback(emu.default_kfid)
    emu.fire_callback(emu.default_kfid)
    first, second = receiver.wait(2)
    assert first["Token"] != second["Token"]


def test_notify_false_fires_nothing(emu, receiver):
    emu.customer_text(emu.default_kfid, emu.add_customer(), "quiet", notify=False)
    emu.fire_callback(emu.default_kfid)  # a marker: only this one arrives
    assert len(receiver.wait(1)) == 1


def test_failed_callback_is_retried_up_to_callback_attempts(emu, receiver):
    receiver.status = 500
    emu.callback_attempts, emu.callback_retry_delay = 3, 0.01
    assert emu.fire_callback(emu.default_kfid) == 500
    assert len(receiver.raw) == 3
    attempts = [e["request"]["attempt"] for e in emu.protocol_log() if e["kind"] == "callback"]
    assert attempts == [1, 2, 3]


def test_unreachable_callback_url_returns_0(emu):
    emu.callback_url = "http://127.0.0.1:9/unreachable"
    assert emu.fire_callback(emu.default_kfid) == 0


def test_verify_url_sends_an_echostr_the_receiver_can_decrypt(emu, receiver):
    status, body, expected = emu.verify_url()
    assert status == 200 and body.decode() == expected


def test_post_callback_raw_sends_exact_bytes(emu, receiver):
    status, _ = emu.post_callback_raw(
        b"<xml>forged</xml>", {"msg_signature": "bad", "timestamp": "1", "nonce": "2"}
    )
    assert status == 200
    assert receiver.raw[-1] == (
        {"msg_signature": "bad", "timestamp": "1", "nonce": "2"},
        b"<xml>forged</xml>",
    )
    assert receiver.payloads == []


def test_callback_is_logged_when_sent_and_completed_when_answered(emu, receiver, api):
    api.fetch_token()
    start = max(e["seq"] for e in emu.protocol_log())
    receiver.gate.clear()
    future = emu.fire_callback(emu.default_kfid, wait=False)
    receiver.wait(1)  # the callback arrived; its answer is held back
    assert api.get("kf/account/list").json()["errcode"] == 0  # a call the callback "triggered"

    log = emu.protocol_log(start)
    assert [e["api"] for e in log] == ["callback", "kf/account/list"]
    assert log[0]["pending"] is True and log[0]["response"] == {"status": None}
    protocol_url = emu.base_url + "sandbox/api/protocol"
    page = requests.get(protocol_url, params={"since": start, "wait": 0}, timeout=5).json()
    assert page == {"items": [], "next": start}  # the page never sees a half-done entry

    receiver.gate.set()
    assert future.result(timeout=5) == 200
    page = requests.get(protocol_url, params={"since": start, "wait": 5}, timeout=10).json()
    assert [(e["api"], e["response"].get("status")) for e in page["items"]][:1] == [("callback", 200)]
    assert [e["api"] for e in page["items"]] == ["callback", "kf/account/list"]
    assert [e["seq"] for e in page["items"]] == sorted(e["seq"] for e in page["items"])
    assert "pending" not in emu.protocol_log(start)[0]
