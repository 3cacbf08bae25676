"""TurnAssembler merges attachments with the following question; Turn builds the context args."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Any

import pytest

from bridge.context import ContextType
from channel.wechatcom_kf.api import DownloadedMedia
from channel.wechatcom_kf.inbound.turns import Turn, TurnAssembler
from channel.wechatcom_kf.wechatcom_kf_message import WechatComKfMessage

KFID = "wkKF1"
LONG = 60.0  # a window that never expires during a test: outcomes then depend on order only
WAIT = 10.0  # generous upper bound when a test does wait for a window
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
_ids = itertools.count(1)


class LocalFetcher:
    def download_media(self, media_id: str, max_bytes: int) -> DownloadedMedia:
        if media_id == "BROKEN":
            raise OSError("download failed")
        if media_id.startswith("FILE"):
            return DownloadedMedia(b"%PDF-1.4 report", "application/pdf", "report.pdf")
        if media_id.startswith("VOICE"):
            return DownloadedMedia(b"#!AMR\n" + b"\x3c" * 16, "audio/amr", None)
        return DownloadedMedia(PNG, "image/png", None)


class Collector:
    def __init__(self, expected: int = 1) -> None:
        self.turns: list[Turn] = []
        self.done = threading.Event()
        self.expected = expected

    def __call__(self, turn: Turn) -> None:
        self.turns.append(turn)
        if len(self.turns) >= self.expected:
            self.done.set()

    def contents(self) -> list[list[str]]:
        return [[m.msgtype + ":" + str(m.msg_id) for m in t.messages] for t in self.turns]


@pytest.fixture
def mk(tmp_path: Path) -> Any:
    fetcher = LocalFetcher()

    def make(msgtype: str, body: dict[str, Any] | None = None, user: str = "wmA") -> WechatComKfMessage:
        if body is None:
            body = {"media_id": f"{msgtype.upper()}_{next(_ids)}"} if msgtype != "text" else {"content": "?"}
        raw = {
            "msgid": f"m{next(_ids)}",
            "open_kfid": KFID,
            "external_userid": user,
            "send_time": 1700000000,
            "origin": 3,
            "msgtype": msgtype,
            msgtype: body,
        }
        return WechatComKfMessage(raw, fetcher, tmp_path / "media")

    return make


def test_text_alone_is_emitted_immediately(mk: Any) -> None:
    out = Collector()
    assembler = TurnAssembler(LONG, out)
    text = mk("text", {"content": "在吗"})
    assembler.submit(text)
    assert len(out.turns) == 1 and out.turns[0].messages == [text]
    assert out.turns[0].key == (KFID, "wmA")
    assert out.turns[0].to_context_args() == (ContextType.TEXT, "在吗", {"kf_msgids": [text.msg_id]})
    assembler.close()


def test_image_then_text_within_window_is_one_turn(mk: Any) -> None:
    out = Collector()
    assembler = TurnAssembler(LONG, out)
    image, text = mk("image"), mk("text", {"content": "这个报错怎么解决？"})
    assembler.submit(image)
    assert out.turns == [] and assembler.held_count() == 1
    assembler.submit(text)
    assert len(out.turns) == 1 and out.turns[0].messages == [image, text]
    turn = out.turns[0]
    turn.prepare()
    ctype, content, kwargs = turn.to_context_args()
    assert ctype == ContextType.TEXT
    assert content.endswith("这个报错怎么解决？")
    assert kwargs["image_paths"] == [image.content] and Path(image.content).read_bytes() == PNG
    assert kwargs["kf_msgids"] == [image.msg_id, text.msg_id]
    assert assembler.held_count() == 0
    assembler.close()


def test_image_alone_is_emitted_after_the_window(mk: Any) -> None:
    out = Collector()
    assembler = TurnAssembler(0.2, out)
    image = mk("image")
    assembler.submit(image)
    assert out.done.wait(WAIT)
    assert len(out.turns) == 1 and out.turns[0].messages == [image]
    out.turns[0].prepare()
    ctype, content, kwargs = out.turns[0].to_context_args()
    assert ctype == ContextType.TEXT
    assert "图片" in content and "回复" in content  # the bot is asked to answer the picture
    assert kwargs == {"kf_msgids": [image.msg_id], "image_paths": [image.content]}
    assembler.close()


def test_attachments_accumulate_until_the_question(mk: Any) -> None:
    out = Collector()
    assembler = TurnAssembler(LONG, out)
    first, second, loc = mk("image"), mk("file"), mk("location", {"name": "仓库", "address": "A 路 1 号"})
    question = mk("text", {"content": "这些能一起寄吗"})
    for message in (first, second, loc, question):
        assembler.submit(message)
    assert len(out.turns) == 1 and out.turns[0].messages == [first, second, loc, question]
    out.turns[0].prepare()
    _, content, kwargs = out.turns[0].to_context_args()
    assert content.splitlines() == [
        "[用户发送了图片]",
        "[用户发送了文件：report.pdf]",
        "[用户发送了位置] 仓库（A 路 1 号）",
        "这些能一起寄吗",
    ]
    assert kwargs["image_paths"] == [first.content]
    assembler.close()


def test_held_attachments_are_bounded(mk: Any) -> None:
    out = Collector()
    assembler = TurnAssembler(LONG, out, max_held=3)
    images = [mk("image") for _ in range(4)]
    for image in images:
        assembler.submit(image)
    assert [t.messages for t in out.turns] == [images[:3]]
    assert assembler.held_count() == 1
    assembler.close()
    assert [t.messages for t in out.turns] == [images[:3], images[3:]]


def test_two_customers_interleaved_stay_separate(mk: Any) -> None:
    out = Collector()
    assembler = TurnAssembler(LONG, out)
    a_img, b_img = mk("image", user="wmA"), mk("image", user="wmB")
    a_txt, b_txt = mk("text", user="wmA"), mk("text", user="wmB")
    for message in (a_img, b_img, a_txt, b_txt):
        assembler.submit(message)
    assert [t.key for t in out.turns] == [(KFID, "wmA"), (KFID, "wmB")]
    assert [t.messages for t in out.turns] == [[a_img, a_txt], [b_img, b_txt]]
    assembler.close()


def test_order_is_preserved_per_customer(mk: Any) -> None:
    out = Collector(expected=2)
    assembler = TurnAssembler(0.2, out)
    first, image, second = mk("text"), mk("image"), mk("text")
    assembler.submit(first)
    assembler.submit(image)
    assert out.done.wait(WAIT)  # the image's window lapsed: it went out alone, after the first text
    assembler.submit(second)
    assert [t.messages for t in out.turns] == [[first], [image], [second]]
    assembler.close()


def test_flush_all_emits_everything_held(mk: Any) -> None:
    out = Collector()
    assembler = TurnAssembler(LONG, out)
    a, b1, b2 = mk("image", user="wmA"), mk("file", user="wmB"), mk("link", {"url": "https://x"}, user="wmB")
    for message in (a, b1, b2):
        assembler.submit(message)
    assert out.turns == []
    assert assembler.flush_all() == 2
    assert sorted(len(t.messages) for t in out.turns) == [1, 2]
    assert assembler.held_count() == 0
    assert assembler.flush_all() == 0
    assembler.close()


def test_close_flushes_and_later_messages_are_not_held(mk: Any) -> None:
    out = Collector()
    assembler = TurnAssembler(LONG, out)
    image = mk("image")
    assembler.submit(image)
    assembler.close()
    assert [t.messages for t in out.turns] == [[image]]
    late = mk("image")
    assembler.submit(late)
    assert [t.messages for t in out.turns] == [[image], [late]]
    assert not any(t.name == "kf-turn-assembler" and t.is_alive() for t in threading.enumerate())


def test_window_zero_holds_nothing(mk: Any) -> None:
    out = Collector()
    assembler = TurnAssembler(0, out)
    image, text = mk("image"), mk("text")
    assembler.submit(image)
    assembler.submit(text)
    assert [t.messages for t in out.turns] == [[image], [text]]
    assembler.close()


def test_one_scheduler_thread_for_many_customers(mk: Any) -> None:
    out = Collector()
    assembler = TurnAssembler(LONG, out)
    before = sum(t.name == "kf-turn-assembler" for t in threading.enumerate())
    for n in range(20):
        assembler.submit(mk("image", user=f"wm{n}"))
    assert sum(t.name == "kf-turn-assembler" for t in threading.enumerate()) == before + 1
    assembler.close()
    assert len(out.turns) == 20


def test_a_failing_emit_does_not_stop_the_scheduler(mk: Any) -> None:
    out = Collector(expected=2)
    failed: list[Turn] = []

    def emit(turn: Turn) -> None:
        if not failed:
            failed.append(turn)
            raise RuntimeError("queue full")
        out(turn)

    assembler = TurnAssembler(0.1, emit)
    first, second = mk("image", user="wmA"), mk("image", user="wmB")
    assembler.submit(first)
    assembler.submit(second)
    third = mk("file", user="wmC")
    assembler.submit(third)
    assert out.done.wait(WAIT)
    assert [t.messages for t in failed] == [[first]]
    assert [t.messages for t in out.turns] == [[second], [third]]
    assembler.close()


def test_voice_alone_stays_voice_for_the_host_to_transcribe(mk: Any) -> None:
    voice = mk("voice")
    turn = Turn((KFID, "wmA"), [voice])
    turn.prepare()
    assert turn.to_context_args() == (ContextType.VOICE, voice.content, {"kf_msgids": [voice.msg_id]})
    assert voice.content.endswith(".amr")


def test_voice_question_carries_the_attachments(mk: Any) -> None:
    image, doc, voice = mk("image"), mk("file"), mk("voice")
    turn = Turn((KFID, "wmA"), [image, doc, voice])
    turn.prepare()
    ctype, content, kwargs = turn.to_context_args()
    assert (ctype, content) == (ContextType.VOICE, voice.content)
    assert kwargs["image_paths"] == [image.content]
    assert "report.pdf" in kwargs["kf_attachments_text"]
    assert kwargs["kf_msgids"] == [image.msg_id, doc.msg_id, voice.msg_id]


def test_failed_image_still_gives_the_bot_something_to_answer(mk: Any) -> None:
    broken, text = mk("image", {"media_id": "BROKEN"}), mk("text", {"content": "看看这个"})
    turn = Turn((KFID, "wmA"), [broken, text])
    turn.prepare()
    ctype, content, kwargs = turn.to_context_args()
    assert ctype == ContextType.TEXT
    assert "图片下载失败" in content and content.endswith("看看这个")
    assert "image_paths" not in kwargs


def test_non_image_attachment_alone_asks_for_an_answer(mk: Any) -> None:
    link = mk("link", {"title": "退款政策", "url": "https://example.com/r"})
    turn = Turn((KFID, "wmA"), [link])
    turn.prepare()
    ctype, content, kwargs = turn.to_context_args()
    assert ctype == ContextType.TEXT
    assert "退款政策" in content and "请根据以上内容回复用户" in content
    assert kwargs == {"kf_msgids": [link.msg_id]}
