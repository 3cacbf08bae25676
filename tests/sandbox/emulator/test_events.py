"""Events and codes: welcome_code, send_msg_on_event, take_over / hand_back, recall, send failures."""

from __future__ import annotations


def events(api, kf, token):
    items = api.post("kf/sync_msg", {"open_kfid": kf, "token": token})["msg_list"]
    return [m["event"] for m in items if m["msgtype"] == "event"]


def welcome(code, text="欢迎", **extra):
    return {"code": code, "msgtype": "text", "text": {"content": text}, **extra}


def test_welcome_code_is_single_use_and_recorded_as_a_send(emu, api):
    kf, user = emu.default_kfid, emu.add_customer()
    code = emu.enter_session(kf, user, notify=False)
    assert api.post("kf/send_msg_on_event", welcome(code, msgid="w1")) == {
        "errcode": 0,
        "errmsg": "ok",
        "msgid": "w1",
    }
    assert api.post("kf/send_msg_on_event", welcome(code))["errcode"] == 40058
    (sent,) = emu.sends
    assert (sent.api, sent.touser, sent.open_kfid, sent.text, sent.reply_to) == (
        "send_msg_on_event",
        user,
        kf,
        "欢迎",
        None,
    )


def test_welcome_code_expires_after_20_seconds(emu, api):
    code = emu.enter_session(emu.default_kfid, emu.add_customer(), notify=False)
    emu.advance_time(21)
    assert api.post("kf/send_msg_on_event", welcome(code))["errcode"] == 40058


def test_no_welcome_code_after_the_customer_wrote_or_was_welcomed(emu, api):
    kf, user = emu.default_kfid, emu.add_customer()
    code = emu.enter_session(kf, user, notify=False)
    api.post("kf/send_msg_on_event", welcome(code))
    assert emu.enter_session(kf, user, notify=False) == ""
    other = emu.add_customer()
    emu.customer_text(kf, other, "hi", notify=False)
    assert emu.enter_session(kf, other, notify=False) == ""


def test_welcome_menu_and_bad_msgtype(emu, api):
    code = emu.enter_session(emu.default_kfid, emu.add_customer(), notify=False)
    menu = {"head_content": "您好", "list": [{"type": "click", "click": {"id": "1", "content": "查订单"}}]}
    assert (
        api.post("kf/send_msg_on_event", {"code": code, "msgtype": "image", "image": {}})["errcode"] == 40058
    )
    assert (
        api.post("kf/send_msg_on_event", {"code": code, "msgtype": "msgmenu", "msgmenu": menu})["errcode"]
        == 0
    )


def test_take_over_and_hand_back_events_and_states(emu, api, sync_token):
    kf, user = emu.default_kfid, emu.add_customer()
    emu.customer_text(kf, user, "hi", notify=False)
    emu.take_over(kf, user, servicer_userid="lisi", notify=False)
    assert emu.service_state(kf, user) == 3
    emu.hand_back(kf, user, notify=False)
    assert emu.service_state(kf, user) == 4
    taken, ended = events(api, kf, sync_token(kf))
    assert (taken["event_type"], taken["change_type"], taken["new_servicer_userid"]) == (
        "session_status_change",
        1,
        "lisi",
    )
    assert (ended["change_type"], ended["old_servicer_userid"]) == (3, "lisi")
    closing = api.post("kf/send_msg_on_event", welcome(ended["msg_code"], "再见"))
    assert closing["errcode"] == 0
    emu.customer_text(kf, user, "again", notify=False)
    assert emu.service_state(kf, user) == 0


def test_service_state_get_and_trans(emu, api):
    kf, user = emu.default_kfid, emu.add_customer()
    emu.customer_text(kf, user, "hi", notify=False)
    key = {"open_kfid": kf, "external_userid": user}
    assert api.post("kf/service_state/get", key)["service_state"] == 0
    assert api.post("kf/service_state/trans", {**key, "service_state": 1}) == {"errcode": 0, "errmsg": "ok"}
    assert (
        api.post("kf/service_state/trans", {**key, "service_state": 3, "servicer_userid": "nobody"})[
            "errcode"
        ]
        == 95014
    )
    to3 = api.post("kf/service_state/trans", {**key, "service_state": 3, "servicer_userid": "zhangsan"})
    assert to3["errcode"] == 0 and to3["msg_code"]
    assert api.post("kf/service_state/get", key) == {
        "errcode": 0,
        "errmsg": "ok",
        "service_state": 3,
        "servicer_userid": "zhangsan",
    }
    assert api.post("kf/service_state/trans", {**key, "service_state": 1})["errcode"] == 95016
    to4 = api.post("kf/service_state/trans", {**key, "service_state": 4})
    assert to4["msg_code"]
    assert api.post("kf/service_state/trans", {**key, "service_state": 0})["errcode"] == 95016


def test_state_code_is_tied_to_its_state(emu, api):
    kf, user = emu.default_kfid, emu.add_customer()
    emu.customer_text(kf, user, "hi", notify=False)
    key = {"open_kfid": kf, "external_userid": user}
    code = api.post("kf/service_state/trans", {**key, "service_state": 2})["msg_code"]
    api.post("kf/service_state/trans", {**key, "service_state": 4})
    assert api.post("kf/send_msg_on_event", welcome(code, "排队中"))["errcode"] == 95018


def test_recall_send_fail_and_raw_events(emu, api, sync_token):
    kf, user = emu.default_kfid, emu.add_customer()
    msgid = emu.customer_text(kf, user, "oops", notify=False)
    emu.recall(kf, user, msgid, notify=False)
    emu.send_fail(kf, user, "r1_0", fail_type=6, notify=False)
    emu.push_event(
        kf, {"event_type": "servicer_status_change", "servicer_userid": "zhangsan", "status": 2}, notify=False
    )
    recall, fail, raw = events(api, kf, sync_token(kf))
    assert recall == {
        "open_kfid": kf,
        "event_type": "user_recall_msg",
        "external_userid": user,
        "recall_msgid": msgid,
    }
    assert (fail["event_type"], fail["fail_msgid"], fail["fail_type"]) == ("msg_send_fail", "r1_0", 6)
    assert raw["open_kfid"] == kf and raw["status"] == 2


def test_customer_batchget_and_account_and_servicer_lists(emu, api):
    kf, user = emu.default_kfid, emu.add_customer("张三", gender=1)
    emu.enter_session(kf, user, scene="ad", scene_param="x=1", notify=False)
    answer = api.post(
        "kf/customer/batchget", {"external_userid_list": [user, "wmghost"], "need_enter_session_context": 1}
    )
    (customer,) = answer["customer_list"]
    assert (customer["nickname"], customer["gender"]) == ("张三", 1)
    assert customer["enter_session_context"] == {"scene": "ad", "scene_param": "x=1"}
    assert answer["invalid_external_userid"] == ["wmghost"]
    assert api.post("kf/customer/batchget", {"external_userid_list": []})["errcode"] == 40058
    second = emu.add_account("售后")
    listed = api.post("kf/account/list", {"offset": 0, "limit": 100})["account_list"]
    assert [(a["open_kfid"], a["manage_privilege"]) for a in listed] == [(kf, True), (second, True)]
    assert api.post("kf/account/list", {"limit": 1})["account_list"][0]["open_kfid"] == kf
    servicers = api.get("kf/servicer/list", open_kfid=kf).json()["servicer_list"]
    assert [s["userid"] for s in servicers] == ["zhangsan"]
