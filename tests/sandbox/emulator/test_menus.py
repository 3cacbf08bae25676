"""Menu messages: msgmenu checks on both send APIs, and a customer's click coming back (§2, §4, §5)."""

from __future__ import annotations

import pytest

from sandbox.emulator.models import SEND_BUDGET

MENU = {
    "head_content": "您对本次服务是否满意？",
    "list": [
        {"type": "click", "click": {"id": "101", "content": "满意"}},
        {"type": "click", "click": {"id": "102", "content": "不满意"}},
        {"type": "view", "view": {"url": "https://example.com/faq", "content": "常见问题"}},
        {"type": "text", "text": {"content": "或者直接留言", "no_newline": 0}},
    ],
    "tail_content": "欢迎再次光临",
}


def click(menu_id: str, content: str) -> dict:
    return {"type": "click", "click": {"id": menu_id, "content": content}}


def send_menu(api, kf, user, menu):
    return api.post("kf/send_msg", {"touser": user, "open_kfid": kf, "msgtype": "msgmenu", "msgmenu": menu})


def on_event(api, code, menu):
    return api.post("kf/send_msg_on_event", {"code": code, "msgtype": "msgmenu", "msgmenu": menu})


@pytest.fixture
def chat(emu):
    kf, user = emu.default_kfid, emu.add_customer()
    emu.customer_text(kf, user, "你好", notify=False)
    return kf, user


BAD_MENUS = [
    pytest.param({"list": [click(str(i), f"选项{i}") for i in range(11)]}, 95008, id="11-items"),
    pytest.param({"list": [{"type": "bogus", "bogus": {}}]}, 95009, id="unknown-type"),
    pytest.param({"list": [{"type": "click"}]}, 95009, id="item-without-body"),
    pytest.param({"list": ["101"]}, 95009, id="item-not-an-object"),
    pytest.param({"head_content": "好" * 342}, 40058, id="head-over-1024-bytes"),
    pytest.param({"tail_content": "好" * 342}, 40058, id="tail-over-1024-bytes"),
    pytest.param({"list": [click("", "满意")]}, 40058, id="empty-click-id"),
    pytest.param({"list": [click("x" * 129, "满意")]}, 40058, id="click-id-over-128"),
    pytest.param({"list": [click("1", "好" * 43)]}, 40058, id="click-content-over-128"),
    pytest.param({"list": [{"type": "text", "text": {"content": ""}}]}, 40058, id="empty-text-item"),
    pytest.param(
        {"list": [{"type": "text", "text": {"content": "a", "no_newline": 2}}]}, 40058, id="bad-no-newline"
    ),
    pytest.param({"list": [{"type": "view", "view": {"content": "x"}}]}, 40058, id="view-without-url"),
    pytest.param({"list": "101"}, 40058, id="list-not-a-list"),
]
GOOD_MENUS = [
    pytest.param(MENU, id="full"),
    pytest.param({"head_content": "请稍候，正在为您转接人工客服", "list": []}, id="head-only-empty-list"),
    pytest.param({"head_content": "只有开头"}, id="head-only-no-list"),
    pytest.param({"list": [click(str(i), f"选项{i}") for i in range(10)]}, id="10-items"),
    pytest.param(
        {
            "list": [
                {"type": "miniprogram", "miniprogram": {"appid": "wx1", "pagepath": "p", "content": "小程序"}}
            ]
        },
        id="miniprogram-item",
    ),
]


@pytest.mark.parametrize(("menu", "errcode"), BAD_MENUS)
def test_send_msg_checks_the_menu(emu, api, chat, menu, errcode):
    assert send_menu(api, *chat, menu)["errcode"] == errcode
    assert emu.sends == []


@pytest.mark.parametrize("menu", GOOD_MENUS)
def test_send_msg_accepts_valid_menus(emu, api, chat, menu):
    assert send_menu(api, *chat, menu)["errcode"] == 0
    (sent,) = emu.sends
    assert sent.msgtype == "msgmenu" and sent.body == menu


@pytest.mark.parametrize(("menu", "errcode"), BAD_MENUS)
def test_send_msg_on_event_checks_the_menu_and_keeps_the_code(emu, api, menu, errcode):
    code = emu.enter_session(emu.default_kfid, emu.add_customer(), notify=False)
    assert on_event(api, code, menu)["errcode"] == errcode
    assert on_event(api, code, MENU)["errcode"] == 0  # a rejected body did not use up the code


@pytest.mark.parametrize("menu", GOOD_MENUS)
def test_welcome_code_accepts_valid_menus(emu, api, menu):
    code = emu.enter_session(emu.default_kfid, emu.add_customer(), notify=False)
    assert on_event(api, code, menu)["errcode"] == 0
    assert emu.sends[-1].api == "send_msg_on_event" and emu.sends[-1].body == menu


def test_closing_code_allows_a_menu_but_a_pool_code_only_text(emu, api, chat):
    kf, user = chat
    key = {"open_kfid": kf, "external_userid": user}
    pool = api.post("kf/service_state/trans", {**key, "service_state": 2})["msg_code"]
    assert on_event(api, pool, MENU)["errcode"] == 40058
    closing = api.post("kf/service_state/trans", {**key, "service_state": 4})["msg_code"]
    assert on_event(api, closing, MENU)["errcode"] == 0


def test_customer_click_is_a_text_with_menu_id_in_sync_msg(emu, api, chat, sync_token):
    kf, user = chat
    assert send_menu(api, kf, user, MENU)["errcode"] == 0
    msgid = emu.customer_click(kf, user, "101", "满意", notify=False)
    items = api.post("kf/sync_msg", {"open_kfid": kf, "token": sync_token(kf)})["msg_list"]
    clicked = items[-1]
    assert clicked["msgid"] == msgid
    assert (clicked["origin"], clicked["external_userid"], clicked["open_kfid"]) == (3, user, kf)
    assert clicked["msgtype"] == "text"
    assert clicked["text"] == {"content": "满意", "menu_id": "101"}


def test_customer_click_reopens_the_window_and_the_budget(emu, api, chat):
    kf, user = chat
    texts = [
        api.post(
            "kf/send_msg",
            {"touser": user, "open_kfid": kf, "msgtype": "text", "text": {"content": f"p{i}"}},
        )["errcode"]
        for i in range(SEND_BUDGET + 1)
    ]
    assert texts[-1] == 95001
    emu.advance_time(47 * 3600)
    clicked = emu.customer_click(kf, user, "102", "不满意", notify=False)
    emu.advance_time(47 * 3600)  # 94 h after the first message, 47 h after the click
    assert send_menu(api, kf, user, MENU)["errcode"] == 0
    assert emu.sends[-1].reply_to == clicked


def test_customer_click_fires_a_callback_and_shows_in_the_feed(emu, receiver):
    kf, user = emu.default_kfid, emu.add_customer()
    msgid = emu.customer_click(kf, user, "101", "满意", wait=True)
    assert receiver.wait(1)[0]["OpenKfId"] == kf
    item = emu.feed()[-1]
    assert (item["from"], item["text"], item["menu_id"], item["msgid"]) == ("customer", "满意", "101", msgid)


def test_customer_click_checks_its_arguments(emu):
    kf, user = emu.default_kfid, emu.add_customer()
    with pytest.raises(ValueError):
        emu.customer_click(kf, user, "", "满意", notify=False)
    with pytest.raises(ValueError):
        emu.customer_click(kf, user, "1", "x" * 129, notify=False)
    with pytest.raises(KeyError):
        emu.customer_click(kf, "wmnobody", "1", "满意", notify=False)
    assert emu.messages(kf) == []


def test_bot_menu_in_the_feed_carries_the_menu(emu, api, chat):
    kf, user = chat
    send_menu(api, kf, user, MENU)
    item = emu.feed()[-1]
    assert item["from"] == "bot" and item["msgtype"] == "msgmenu"
    assert item["menu"] == MENU
    assert "满意" in item["text"]  # the one-line text stays for previews
