"""One sync_msg item -> ``parse_item`` -> WechatComKfMessage, for every msgtype of the fact sheet (§2).

Only customer messages (``CustomerMessage``) become a WechatComKfMessage; what is not one is sorted
out by ``parse_item`` (checked at the end of this file).
"""

from __future__ import annotations

import json
import logging
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest

from bridge.context import ContextType
from channel.wechatcom_kf.api import DownloadedMedia
from channel.wechatcom_kf.inbound.items import (
    CustomerMessage,
    EnterSession,
    Item,
    ServicerMessage,
    UnusableItem,
    parse_item,
)
from channel.wechatcom_kf.wechatcom_kf_message import WechatComKfMessage, session_key
from tests.media_samples import tiny_png

KFID = "wkAJ2GCAAAZSfhHCt7IFSvLKtMPxyJTw"
USER = "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw"

PNG = tiny_png()  # a real image: customers' images are decoded before use
AMR = b"#!AMR\n" + b"\x3c" * 64
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64
PDF = b"%PDF-1.4\n" + b"x" * 64


def item(msgtype: str, body: Any, **extra: Any) -> dict[str, Any]:
    """An origin-3 item shaped exactly like kf/sync_msg's msg_list[]."""
    base = {
        "msgid": extra.pop("msgid", f"from_msgid_{uuid.uuid4().int % 10**19}"),
        "open_kfid": KFID,
        "external_userid": USER,
        "send_time": 1615478585,
        "origin": 3,
        "msgtype": msgtype,
        msgtype: body,
    }
    base.update(extra)
    return base


class LocalFetcher:
    """A stand-in for KfApi.download_media for pure-logic tests (the emulator test uses the real one)."""

    def __init__(self, files: dict[str, DownloadedMedia], error: Exception | None = None) -> None:
        self.files = files
        self.error = error
        self.calls: list[tuple[str, int]] = []

    def download_media(self, media_id: str, max_bytes: int) -> DownloadedMedia:
        self.calls.append((media_id, max_bytes))
        if self.error is not None:
            raise self.error
        return self.files[media_id]


def customer(raw: dict[str, Any], open_kfid: str = KFID) -> CustomerMessage:
    parsed = parse_item(raw, open_kfid)
    assert isinstance(parsed, CustomerMessage)
    return parsed


def make(
    raw: dict[str, Any], tmp_path: Path, fetcher: LocalFetcher | None = None, open_kfid: str = KFID
) -> WechatComKfMessage:
    return WechatComKfMessage(customer(raw, open_kfid), fetcher or LocalFetcher({}), tmp_path / "media")


def test_text_message_fields(tmp_path: Path) -> None:
    raw = item("text", {"content": "你好，请问发货了吗", "menu_id": "101"}, msgid="from_msgid_1")
    parsed = customer(raw)
    msg = WechatComKfMessage(parsed, LocalFetcher({}), tmp_path / "media")
    assert msg.ctype == ContextType.TEXT
    assert msg.content == "你好，请问发货了吗"
    assert msg.menu_id == "101"
    assert msg.msg_id == "from_msgid_1"
    assert msg.create_time == 1615478585
    assert (msg.from_user_id, msg.to_user_id) == (USER, KFID)
    assert (msg.open_kfid, msg.external_userid, msg.msgtype) == (KFID, USER, "text")
    assert msg.other_user_id == session_key(KFID, USER) == f"{KFID}:{USER}"
    assert msg.is_group is False
    assert msg.origin == 3
    assert msg.item is parsed and msg.item.raw is raw
    assert msg._rawmsg is parsed  # what CoW calls the raw message
    assert not msg.is_attachment


def test_text_without_menu_id_has_none(tmp_path: Path) -> None:
    assert make(item("text", {"content": "hi"}), tmp_path).menu_id is None


def test_sessions_are_isolated_per_account(tmp_path: Path) -> None:
    raw = item("text", {"content": "x"})
    a = make(raw, tmp_path)
    b = make(raw, tmp_path, open_kfid="wkOTHER")  # the same customer writing to another account
    assert a.other_user_id != b.other_user_id
    assert (b.open_kfid, b.to_user_id) == ("wkOTHER", "wkOTHER")


def test_the_account_is_the_one_pulled_from_whatever_the_item_says(tmp_path: Path) -> None:
    msg = make(item("text", {"content": "x"}, open_kfid="wkFORGED"), tmp_path)
    assert msg.open_kfid == KFID
    assert msg.other_user_id == session_key(KFID, USER)


@pytest.mark.parametrize(
    ("msgtype", "data", "content_type", "ctype", "ext"),
    [
        ("image", PNG, "image/png", ContextType.IMAGE, ".png"),
        ("voice", AMR, "audio/amr", ContextType.VOICE, ".wav"),  # converted for speech-to-text
        ("video", MP4, "video/mp4", ContextType.VIDEO, ".mp4"),
        ("file", PDF, "application/pdf", ContextType.FILE, ".pdf"),
    ],
)
def test_media_is_downloaded_lazily_to_a_private_file(
    tmp_path: Path, msgtype: str, data: bytes, content_type: str, ctype: ContextType, ext: str
) -> None:
    fetcher = LocalFetcher({"MEDIA_1": DownloadedMedia(data, content_type, "报告.pdf")})
    msg = make(item(msgtype, {"media_id": "MEDIA_1"}), tmp_path, fetcher)
    assert msg.ctype == ctype
    assert fetcher.calls == []  # nothing downloaded before prepare()
    msg.prepare()
    msg.prepare()
    assert len(fetcher.calls) == 1
    path = Path(msg.content)
    if msgtype == "voice":  # the host's speech-to-text gets WAV; the AMR as received stays beside it
        assert path.read_bytes()[:4] == b"RIFF" and path.with_suffix(".amr").read_bytes() == data
    else:
        assert path.read_bytes() == data
    assert path.suffix == ext
    assert path.parent == (tmp_path / "media").resolve()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert msg.ctype == ctype
    assert msg.is_attachment == (msgtype != "voice")


def test_media_size_caps_follow_the_received_limits(tmp_path: Path) -> None:
    fetcher = LocalFetcher({"M": DownloadedMedia(PNG, "image/png", None)})
    caps = {}
    for kind in ("image", "voice", "video", "file"):
        fetcher.calls.clear()
        make(item(kind, {"media_id": "M"}), tmp_path, fetcher).prepare()
        caps[kind] = fetcher.calls[0][1]
    mb = 1024 * 1024
    assert caps == {"image": 2 * mb, "voice": 2 * mb, "video": 10 * mb, "file": 20 * mb}


def test_download_failure_becomes_an_explaining_text(tmp_path: Path) -> None:
    fetcher = LocalFetcher({}, error=RuntimeError("boom"))
    msg = make(item("image", {"media_id": "GONE"}), tmp_path, fetcher)
    msg.prepare()
    assert msg.ctype == ContextType.TEXT
    assert "图片下载失败" in msg.content
    assert msg.media_failed


def test_media_without_media_id_is_answered_as_text(tmp_path: Path) -> None:
    msg = make(item("file", {}), tmp_path)
    assert msg.ctype == ContextType.TEXT
    assert "文件下载失败" in msg.content


RENDERED = [
    (
        "location",
        {
            "latitude": 23.106021881103501,
            "longitude": 113.32450103759801,
            "name": "广州国际媒体港",
            "address": "广东省广州市海珠区滨江东路",
        },
        ["位置", "广州国际媒体港", "广东省广州市海珠区滨江东路", "23.1060218811035", "113.324501037598"],
    ),
    (
        "link",
        {
            "title": "如何申请退款",
            "desc": "售后说明",
            "url": "https://example.com/refund",
            "pic_url": "https://example.com/p.png",
        },
        ["链接", "如何申请退款", "售后说明", "https://example.com/refund"],
    ),
    ("business_card", {"userid": "zhangsan"}, ["名片", "zhangsan"]),
    (
        "miniprogram",
        {"title": "订单小程序", "appid": "wx123123123", "pagepath": "pages/index", "thumb_media_id": "T"},
        ["小程序", "订单小程序", "wx123123123"],
    ),
    (
        "channels_shop_product",
        {
            "product_id": "10000050905396",
            "head_image": "https://h",
            "title": "保温杯",
            "sales_price": "4990",
            "shop_nickname": "杯子小店",
            "shop_head_image": "https://s",
        },
        ["视频号商品", "保温杯", "¥49.90", "杯子小店", "10000050905396"],
    ),
    (
        "channels_shop_order",
        {
            "order_id": "3705115058471208928",
            "product_titles": "保温杯",
            "price_wording": "¥49.90",
            "state": "已完成",
            "image_url": "https://i",
            "shop_nickname": "杯子小店",
        },
        ["视频号订单", "3705115058471208928", "保温杯", "¥49.90", "已完成", "杯子小店"],
    ),
    (
        "channels",
        {"sub_type": 1, "nickname": "美食号", "title": "今日菜谱"},
        ["视频号动态", "美食号", "今日菜谱"],
    ),
    ("channels", {"sub_type": 2, "nickname": "直播间"}, ["视频号直播", "直播间"]),
    (
        "msgmenu",
        {
            "head_content": "您对本次服务是否满意呢？",
            "list": [
                {"type": "click", "click": {"id": "101", "content": "满意"}},
                {"type": "view", "view": {"url": "https://example.com", "content": "查看详情"}},
            ],
            "tail_content": "欢迎再次光临",
        },
        ["菜单", "您对本次服务是否满意呢？", "满意", "查看详情", "欢迎再次光临"],
    ),
]


@pytest.mark.parametrize(("msgtype", "body", "expected"), RENDERED)
def test_structured_types_become_readable_text(
    tmp_path: Path, msgtype: str, body: dict[str, Any], expected: list[str]
) -> None:
    msg = make(item(msgtype, body), tmp_path)
    assert msg.ctype == ContextType.TEXT
    for part in expected:
        assert part in msg.content
    assert msg.is_attachment


def test_merged_msg_parses_json_strings_and_survives_bad_ones(tmp_path: Path) -> None:
    body = {
        "title": "张三和李四的聊天记录",
        "item": [
            {
                "send_time": 1,
                "msgtype": "text",
                "sender_name": "张三",
                "msg_content": json.dumps({"text": {"content": "快递到了吗"}}, ensure_ascii=False),
            },
            {
                "send_time": 2,
                "msgtype": "image",
                "sender_name": "李四",
                "msg_content": json.dumps({"image": {"media_id": "X"}}),
            },
            {"send_time": 3, "msgtype": "text", "sender_name": "李四", "msg_content": "{not json"},
            {
                "send_time": 4,
                "msgtype": "location",
                "sender_name": "张三",
                "msg_content": json.dumps({"location": {"name": "仓库"}}, ensure_ascii=False),
            },
            "garbage",
        ],
    }
    msg = make(item("merged_msg", body), tmp_path)
    assert msg.ctype == ContextType.TEXT
    assert "张三和李四的聊天记录" in msg.content
    assert "张三：快递到了吗" in msg.content
    assert "李四：[图片]" in msg.content
    assert "仓库" in msg.content
    assert "[空消息]" in msg.content  # the unparsable entry is shown, not fatal


def test_unknown_type_logged_once_across_three_messages(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    msgtype = "note" + uuid.uuid4().hex[:8]  # unique: the once-per-type record is process-wide
    with caplog.at_level(logging.WARNING):
        messages = [make(item(msgtype, {"whatever": 1}), tmp_path) for _ in range(3)]
    for msg in messages:
        assert msg.ctype == ContextType.TEXT
        assert msg.content == f"[用户发送了一条暂不支持的消息（类型 {msgtype}）]"
    assert sum(msgtype in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("msgtype", ["meeting", "schedule", "note"])
def test_documented_but_unsupported_types_get_a_polite_text(tmp_path: Path, msgtype: str) -> None:
    msg = make(item(msgtype, {}), tmp_path)
    assert msg.ctype == ContextType.TEXT
    assert msg.content == f"[用户发送了一条暂不支持的消息（类型 {msgtype}）]"


@pytest.mark.parametrize(
    "raw",
    [
        "not a dict",
        None,
        [],
        {"open_kfid": KFID, "external_userid": USER, "origin": 3, "msgtype": "text", "text": {}},
        {"msgid": 12, "external_userid": USER, "origin": 3, "msgtype": "text"},
        {"msgid": "", "external_userid": USER, "origin": 3, "msgtype": "text"},
        {"msgid": None, "origin": 4, "msgtype": "event", "event": {"event_type": "enter_session"}},
    ],
)
def test_items_without_a_msgid_are_not_items(raw: Any) -> None:
    assert parse_item(raw, KFID) is None  # nothing could record them as handled


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"msgid": "m1", "origin": 3, "msgtype": "text"}, "no external_userid"),
        ({"msgid": "m1", "origin": 3, "external_userid": 7, "msgtype": "text"}, "no external_userid"),
        ({"msgid": "m1", "external_userid": USER, "msgtype": "text"}, "origin None"),
        ({"msgid": "m1", "external_userid": USER, "origin": 9, "msgtype": "text"}, "origin 9"),
        ({"msgid": "m1", "external_userid": USER, "origin": 3}, "no msgtype"),
        ({"msgid": "m1", "external_userid": USER, "origin": 3, "msgtype": 5}, "no msgtype"),
        ({"msgid": "m1", "origin": 4, "msgtype": "event"}, "event without a body"),
        ({"msgid": "m1", "origin": 4, "msgtype": "text", "event": "x"}, "event without a body"),
    ],
)
def test_items_that_are_no_customer_message_become_unusable_items(raw: dict[str, Any], reason: str) -> None:
    parsed = parse_item(raw, KFID)
    assert isinstance(parsed, UnusableItem)
    assert (parsed.msgid, parsed.open_kfid, parsed.reason) == ("m1", KFID, reason)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (
            {"msgid": "m1", "origin": 4, "msgtype": "event", "event": {"event_type": "enter_session"}},
            EnterSession,
        ),
        (
            {
                "msgid": "m1",
                "origin": 5,
                "external_userid": USER,
                "msgtype": "text",
                "text": {"content": "x"},
            },
            ServicerMessage,
        ),
    ],
)
def test_events_and_receptionist_messages_are_not_customer_messages(
    raw: dict[str, Any], kind: type[Item]
) -> None:
    parsed = parse_item(raw, KFID)
    assert type(parsed) is kind
    assert not isinstance(parsed, CustomerMessage)


@pytest.mark.parametrize("body", [None, "text", [], {"content": None}, {"content": 5}])
def test_missing_or_wrong_body_fields_never_raise(tmp_path: Path, body: Any) -> None:
    msg = make(item("text", body), tmp_path)
    assert msg.ctype == ContextType.TEXT
    assert msg.content == ""


@pytest.mark.parametrize("msgtype", ["location", "link", "channels", "merged_msg", "msgmenu", "miniprogram"])
def test_structured_types_with_empty_or_broken_bodies_still_render(tmp_path: Path, msgtype: str) -> None:
    for body in (None, {}, {"list": "x", "item": 3, "sub_type": "x", "latitude": [1]}):
        msg = make(item(msgtype, body), tmp_path)
        assert msg.ctype == ContextType.TEXT
        assert msg.content.startswith("[")


@pytest.mark.parametrize("send_time", ["yesterday", None, 0, -5, True, 1.5e9])
def test_bad_send_time_falls_back_to_now(tmp_path: Path, send_time: Any) -> None:
    msg = make(item("text", {"content": "x"}, send_time=send_time), tmp_path)
    assert isinstance(msg.create_time, int) and msg.create_time > 1_700_000_000
