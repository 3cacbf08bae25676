"""Receptionists with a receiving status: kf/servicer/list and service_state/trans to 3 (§6, §7)."""

from __future__ import annotations

import pytest


def servicer_list(api, kf):
    return api.get("kf/servicer/list", open_kfid=kf).json()["servicer_list"]


def trans(api, kf, user, state, servicer=None):
    body = {"open_kfid": kf, "external_userid": user, "service_state": state}
    if servicer is not None:
        body["servicer_userid"] = servicer
    return api.post("kf/service_state/trans", body)


@pytest.fixture
def chat(emu):
    kf, user = emu.default_kfid, emu.add_customer()
    emu.customer_text(kf, user, "转人工", notify=False)
    return kf, user


def test_servicer_list_reports_status_and_stop_type(emu, api):
    kf = emu.default_kfid
    emu.add_servicer("lisi", status=1)
    emu.add_servicer("wangwu")
    emu.set_servicer_status("wangwu", 1, stop_type=1)
    assert servicer_list(api, kf) == [
        {"userid": "lisi", "status": 1, "stop_type": 0},
        {"userid": "wangwu", "status": 1, "stop_type": 1},
        {"userid": "zhangsan", "status": 0, "stop_type": 0},
    ]
    emu.set_servicer_status("wangwu", 0, stop_type=1)  # stop_type only means something while stopped
    assert emu.servicer("wangwu").stop_type == 0
    emu.remove_servicer("lisi")
    emu.remove_servicer("wangwu")
    emu.remove_servicer("zhangsan")
    assert servicer_list(api, kf) == []


def test_servicer_knobs_reject_bad_input(emu):
    with pytest.raises(ValueError):
        emu.add_servicer("lisi", status=2)  # 2 is the event's coding, not the list's
    with pytest.raises(ValueError):
        emu.set_servicer_status("zhangsan", 1, stop_type=3)
    with pytest.raises(KeyError):
        emu.set_servicer_status("nobody", 1)
    with pytest.raises(KeyError):
        emu.remove_servicer("nobody")


def test_trans_to_3_needs_a_known_receiving_servicer(emu, api, chat):
    kf, user = chat
    assert trans(api, kf, user, 3, "nobody")["errcode"] == 95014
    assert trans(api, kf, user, 3)["errcode"] == 95014
    emu.set_servicer_status("zhangsan", 1)
    assert trans(api, kf, user, 3, "zhangsan") == {"errcode": 95019, "errmsg": "servicer stopped"}
    assert emu.service_state(kf, user) == 0
    emu.set_servicer_status("zhangsan", 0)
    answer = trans(api, kf, user, 3, "zhangsan")
    assert answer["errcode"] == 0 and answer["msg_code"]
    assert emu.service_state(kf, user) == 3
    assert [r.errcode for r in emu.rejections] == [95014, 95014, 95019]


def test_trans_to_3_with_no_servicer_at_all(emu, api, chat):
    kf, user = chat
    emu.remove_servicer("zhangsan")
    assert trans(api, kf, user, 3, "zhangsan")["errcode"] == 95014
    assert trans(api, kf, user, 2)["errcode"] == 0  # the queue pool needs no receptionist


def test_pool_code_from_trans_to_3_sends_one_text(emu, api, chat):
    kf, user = chat
    code = trans(api, kf, user, 3, "zhangsan")["msg_code"]
    message = {"code": code, "msgtype": "text", "text": {"content": "正在为您转接人工"}}
    assert api.post("kf/send_msg_on_event", message)["errcode"] == 0
    assert emu.sends[-1].api == "send_msg_on_event" and emu.sends[-1].touser == user
    assert api.post("kf/send_msg_on_event", message)["errcode"] == 40058  # single use


def test_status_change_can_push_the_event(emu, api, sync_token):
    kf = emu.default_kfid
    assert emu.set_servicer_status("zhangsan", 1) is None  # no account given: no event
    msgid = emu.set_servicer_status("zhangsan", 1, stop_type=1, open_kfid=kf, notify=False)
    items = api.post("kf/sync_msg", {"open_kfid": kf, "token": sync_token(kf)})["msg_list"]
    (item,) = items
    assert item["msgid"] == msgid and item["origin"] == 4
    assert item["event"] == {
        "open_kfid": kf,
        "event_type": "servicer_status_change",
        "servicer_userid": "zhangsan",
        "status": 2,  # the event codes stopped as 2 (receiving 1), unlike kf/servicer/list
        "stop_type": 1,
    }


def test_state_dump_lists_servicers_with_status(emu):
    import requests

    emu.add_servicer("lisi", status=1)
    state = requests.get(emu.base_url + "sandbox/api/state", timeout=5).json()
    assert state["servicers"] == ["lisi", "zhangsan"]
    assert state["servicer_list"] == [
        {"userid": "lisi", "status": 1, "stop_type": 0},
        {"userid": "zhangsan", "status": 0, "stop_type": 0},
    ]


def test_take_over_by_an_unknown_servicer_adds_them_receiving(emu, chat):
    kf, user = chat
    emu.take_over(kf, user, servicer_userid="zhaoliu", notify=False)
    assert emu.servicer("zhaoliu").status == 0
