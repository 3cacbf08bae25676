"""kf/sync_msg: callback token, paging, has_more, cursor continuity, the 3-day window, shapes."""

from __future__ import annotations

import time


def test_sync_returns_customer_messages_in_the_documented_shape(emu, api, sync_token):
    kf, user = emu.default_kfid, emu.add_customer("张三")
    msgid = emu.customer_text(kf, user, "你好", notify=False)
    page = api.post("kf/sync_msg", {"open_kfid": kf, "token": sync_token(kf)})
    assert page["errcode"] == 0 and page["has_more"] == 0
    (item,) = page["msg_list"]
    assert item == {
        "msgid": msgid,
        "open_kfid": kf,
        "external_userid": user,
        "send_time": item["send_time"],
        "origin": 3,
        "msgtype": "text",
        "text": {"content": "你好"},
    }
    assert abs(item["send_time"] - time.time()) < 60


def test_paging_with_has_more_and_cursor_continuity(emu, api, sync_token):
    kf, user = emu.default_kfid, emu.add_customer()
    sent = [emu.customer_text(kf, user, f"m{i}", notify=False) for i in range(10)]
    token = sync_token(kf)
    seen, cursor, pages = [], "", []
    for _ in range(10):
        page = api.post("kf/sync_msg", {"open_kfid": kf, "token": token, "cursor": cursor, "limit": 4})
        assert page["errcode"] == 0
        pages.append((len(page["msg_list"]), page["has_more"]))
        seen += [m["msgid"] for m in page["msg_list"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert pages == [(4, 1), (4, 1), (2, 0)]
    assert seen == sent
    later = emu.customer_text(kf, user, "later", notify=False)
    page = api.post("kf/sync_msg", {"open_kfid": kf, "token": token, "cursor": cursor})
    assert [m["msgid"] for m in page["msg_list"]] == [later]


def test_page_size_cap_forces_small_pages(emu, api, sync_token):
    kf, user = emu.default_kfid, emu.add_customer()
    for i in range(5):
        emu.customer_text(kf, user, f"m{i}", notify=False)
    emu.page_size_cap = 2
    page = api.post("kf/sync_msg", {"open_kfid": kf, "token": sync_token(kf)})
    assert len(page["msg_list"]) == 2 and page["has_more"] == 1


def test_cursor_is_opaque_and_foreign_cursors_are_refused(emu, api, sync_token):
    kf = emu.default_kfid
    emu.customer_text(kf, emu.add_customer(), "x", notify=False)
    page = api.post("kf/sync_msg", {"open_kfid": kf, "token": sync_token(kf)})
    assert not page["next_cursor"].isdigit() and len(page["next_cursor"]) <= 64
    bad = api.post("kf/sync_msg", {"open_kfid": kf, "token": sync_token(kf), "cursor": "MTIz"})
    assert bad["errcode"] == 40058


def test_bad_or_foreign_or_expired_token_is_95007(emu, api, sync_token):
    kf, other = emu.default_kfid, emu.add_account("二号")
    assert api.post("kf/sync_msg", {"open_kfid": kf, "token": "ENCforged"})["errcode"] == 95007
    assert api.post("kf/sync_msg", {"open_kfid": kf, "token": sync_token(other)})["errcode"] == 95007
    token = sync_token(kf)
    emu.advance_time(601)
    assert api.post("kf/sync_msg", {"open_kfid": kf, "token": token})["errcode"] == 95007


def test_missing_token_is_allowed_but_strictly_limited_or_required_by_knob(emu, api):
    kf = emu.default_kfid
    emu.tokenless_sync_per_minute = 2
    codes = [api.post("kf/sync_msg", {"open_kfid": kf})["errcode"] for _ in range(3)]
    assert codes == [0, 0, 45009]
    emu.sync_token_required = True
    assert api.post("kf/sync_msg", {"open_kfid": emu.add_account()})["errcode"] == 95007


def test_open_kfid_required_and_must_exist(emu, api, sync_token):
    assert api.post("kf/sync_msg", {"token": "x"})["errcode"] == 40058
    assert api.post("kf/sync_msg", {"open_kfid": "wknotthere", "token": "x"})["errcode"] == 95004


def test_limit_over_1000_is_refused(emu, api, sync_token):
    kf = emu.default_kfid
    assert (
        api.post("kf/sync_msg", {"open_kfid": kf, "token": sync_token(kf), "limit": 1001})["errcode"] == 40058
    )


def test_only_the_last_three_days_are_returned(emu, api, sync_token):
    kf, user = emu.default_kfid, emu.add_customer()
    emu.customer_text(kf, user, "old", send_time=time.time() - 3 * 86400 - 60, notify=False)
    recent = emu.customer_text(kf, user, "recent", send_time=time.time() - 2 * 86400, notify=False)
    page = api.post("kf/sync_msg", {"open_kfid": kf, "token": sync_token(kf)})
    assert [m["msgid"] for m in page["msg_list"]] == [recent]


def test_events_have_no_top_level_ids_and_origin_4(emu, api, sync_token):
    kf, user = emu.default_kfid, emu.add_customer()
    emu.enter_session(kf, user, scene="s1", scene_param="p", notify=False)
    (item,) = api.post("kf/sync_msg", {"open_kfid": kf, "token": sync_token(kf)})["msg_list"]
    assert item["origin"] == 4 and item["msgtype"] == "event"
    assert "open_kfid" not in item and "external_userid" not in item
    event = item["event"]
    assert event["event_type"] == "enter_session"
    assert (event["open_kfid"], event["external_userid"], event["scene"], event["scene_param"]) == (
        kf,
        user,
        "s1",
        "p",
    )
    assert event["welcome_code"]


def test_servicer_messages_are_origin_5_and_sends_are_not_echoed(emu, api, sync_token):
    kf, user = emu.default_kfid, emu.add_customer()
    emu.customer_text(kf, user, "hi", notify=False)
    api.post("kf/send_msg", {"touser": user, "open_kfid": kf, "msgtype": "text", "text": {"content": "bot"}})
    emu.servicer_text(kf, user, "人工", servicer_userid="lisi", notify=False)
    items = api.post("kf/sync_msg", {"open_kfid": kf, "token": sync_token(kf)})["msg_list"]
    assert [(m["origin"], m["msgtype"]) for m in items] == [(3, "text"), (5, "text")]
    assert items[1]["servicer_userid"] == "lisi" and items[1]["text"] == {"content": "人工"}
