"""No credential ever appears in the protocol log, rejections, feed, control API or log records."""

from __future__ import annotations

import json
import logging

import requests


def test_no_secret_leaks_anywhere(emu, api, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    kf, user = emu.default_kfid, emu.add_customer()
    emu.customer_text(kf, user, "hi")
    token = receiver.wait(1)[0]["Token"]
    api.post("kf/sync_msg", {"open_kfid": kf, "token": token})
    api.post("kf/send_msg", {"touser": user, "open_kfid": kf, "msgtype": "text", "text": {"content": "ok"}})
    api.post(
        "kf/send_msg", {"touser": user, "open_kfid": kf, "msgtype": "text", "text": {"content": "x" * 3000}}
    )
    api.upload("file", b"hello world", "a.txt")
    requests.get(emu.api_base + "gettoken", params={"corpid": emu.corp_id, "corpsecret": "wrong"})
    emu.invalidate_tokens()
    api.post("kf/account/list", {})  # 40014 with the revoked token in the URL
    emu.verify_url()

    secrets = emu.secrets()
    assert len(secrets) >= 4 and all(secrets)
    protocol = requests.get(emu.base_url + "sandbox/api/protocol?since=0").text
    feed = requests.get(emu.base_url + "sandbox/api/feed?since=0").text
    everything = "\n".join(
        [
            json.dumps(emu.protocol_log(), ensure_ascii=False),
            json.dumps([r.request for r in emu.rejections], ensure_ascii=False),
            protocol,
            feed,
            "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("sandbox")),
        ]
    )
    assert "access_token" in everything  # the key is shown, its value masked
    for secret in secrets:
        assert secret not in everything
    assert token not in everything  # sync tokens are shortened
