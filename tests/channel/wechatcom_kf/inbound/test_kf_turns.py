"""TurnAssembler merges attachments with the following question; Turn builds the context args.

The assembler runs on real ``KeyedWorkers`` with an injected clock: a merge window is a delayed job,
so a test moves the clock and calls ``workers.wake()`` instead of sleeping. ``drain(key)`` queues an
empty job on a customer's key and waits for it: every job of that customer queued before it has run.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.context import ContextType
from channel.wechatcom_kf.api import DownloadedMedia
from channel.wechatcom_kf.inbound.items import CustomerMessage, parse_item
from channel.wechatcom_kf.inbound.turns import Turn, TurnAssembler
from channel.wechatcom_kf.wechatcom_kf_message import WechatComKfMessage
from channel.wechatcom_kf.workers import KeyedWorkers
from tests.media_samples import tiny_png

KFID = "wkKF1"
WINDOW = 5.0
WAIT = 10.0  # upper bound of every wait for a worker

PNG = tiny_png()  # a real image: customers' images are decoded before use
_ids = itertools.count(1)

Make = Callable[..., WechatComKfMessage]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


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
    """``on_turn``: records each turn (on the customer's worker) and lets a test wait for n turns."""

    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self._cond = threading.Condition()

    def __call__(self, turn: Turn) -> None:
        with self._cond:
            self.turns.append(turn)
            self._cond.notify_all()

    def wait(self, count: int) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.turns) >= count, WAIT), self.turns

    def messages(self) -> list[list[WechatComKfMessage]]:
        with self._cond:
            return [t.messages for t in self.turns]


class Rig:
    def __init__(self, threads: int = 4) -> None:
        self.clock = Clock()
        self.workers = KeyedWorkers("test-turns", threads, clock=self.clock)
        self.out = Collector()

    def assembler(self, window: float = WINDOW, **kw: Any) -> TurnAssembler:
        return TurnAssembler(self.workers, window, kw.pop("on_turn", self.out), **kw)

    def drain(self, user: str = "wmA") -> None:
        done = threading.Event()
        assert self.workers.submit((KFID, user), done.set)
        assert done.wait(WAIT)

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        self.workers.wake()

    def settle(self) -> None:
        """Every window is due (the clock is past it): wait until everything has run."""
        self.workers.wake()
        assert self.workers.wait_idle(WAIT)


@pytest.fixture
def rig() -> Iterator[Rig]:
    made = Rig()
    yield made
    made.workers.shutdown(5)


@pytest.fixture
def mk(tmp_path: Path) -> Make:
    fetcher = LocalFetcher()

    def make(msgtype: str, body: dict[str, Any] | None = None, user: str = "wmA") -> WechatComKfMessage:
        if body is None:
            body = {"media_id": f"{msgtype.upper()}_{next(_ids)}"} if msgtype != "text" else {"content": "?"}
        raw = {
            "msgid": f"m{next(_ids)}",
            "external_userid": user,
            "send_time": 1700000000,
            "origin": 3,
            "msgtype": msgtype,
            msgtype: body,
        }
        item = parse_item(raw, KFID)
        assert isinstance(item, CustomerMessage)
        return WechatComKfMessage(item, fetcher, tmp_path / "media")

    return make


def test_text_alone_is_a_turn_at_once(rig: Rig, mk: Make) -> None:
    assembler = rig.assembler()
    text = mk("text", {"content": "在吗"})
    assert assembler.submit(text)
    rig.out.wait(1)
    turn = rig.out.turns[0]
    assert turn.messages == [text] and turn.key == (KFID, "wmA")
    assert turn.to_context_args() == (ContextType.TEXT, "在吗", {"kf_msgids": [text.msg_id]})


def test_image_then_text_within_the_window_is_one_turn(rig: Rig, mk: Make) -> None:
    assembler = rig.assembler()
    image, text = mk("image"), mk("text", {"content": "这个报错怎么解决？"})
    assembler.submit(image)
    rig.drain()
    assert rig.out.turns == [] and assembler.held_count() == 1
    rig.advance(WINDOW - 1)
    assembler.submit(text)
    rig.out.wait(1)
    assert rig.out.messages() == [[image, text]]
    assert assembler.held_count() == 0
    rig.advance(WINDOW)  # the image's window ends: it left with the question, nothing more comes
    rig.settle()
    assert len(rig.out.turns) == 1
    turn = rig.out.turns[0]
    turn.prepare()
    ctype, content, kwargs = turn.to_context_args()
    assert ctype == ContextType.TEXT
    assert content.endswith("这个报错怎么解决？")
    assert kwargs["image_paths"] == [image.content] and Path(image.content).read_bytes() == PNG
    assert kwargs["kf_msgids"] == [image.msg_id, text.msg_id]


def test_an_image_alone_is_a_turn_when_its_window_ends(rig: Rig, mk: Make) -> None:
    assembler = rig.assembler()
    image = mk("image")
    assembler.submit(image)
    rig.drain()  # the window starts when the worker takes the image
    rig.advance(WINDOW - 0.5)
    rig.drain()
    assert rig.out.turns == []  # not due yet
    rig.advance(1)
    rig.out.wait(1)
    assert rig.out.messages() == [[image]]
    assert assembler.held_count() == 0
    rig.out.turns[0].prepare()
    ctype, content, kwargs = rig.out.turns[0].to_context_args()
    assert ctype == ContextType.TEXT
    assert "图片" in content and "回复" in content  # the bot is asked to answer the picture
    assert kwargs == {"kf_msgids": [image.msg_id], "image_paths": [image.content]}


def test_attachments_accumulate_until_the_question(rig: Rig, mk: Make) -> None:
    assembler = rig.assembler()
    first, second, loc = mk("image"), mk("file"), mk("location", {"name": "仓库", "address": "A 路 1 号"})
    question = mk("text", {"content": "这些能一起寄吗"})
    for message in (first, second, loc, question):
        assembler.submit(message)
    rig.out.wait(1)
    rig.drain()
    assert rig.out.messages() == [[first, second, loc, question]]
    rig.out.turns[0].prepare()
    _, content, kwargs = rig.out.turns[0].to_context_args()
    assert content.splitlines() == [
        "[用户发送了图片]",
        "[用户发送了文件：report.pdf]",
        "[用户发送了位置] 仓库（A 路 1 号）",
        "这些能一起寄吗",
    ]
    assert kwargs["image_paths"] == [first.content]


def test_held_attachments_are_bounded(rig: Rig, mk: Make) -> None:
    assembler = rig.assembler(max_held=3)
    images = [mk("image") for _ in range(4)]
    for image in images:
        assembler.submit(image)
    rig.drain()
    assert rig.out.messages() == [images[:3]]  # the third filled the turn: answered at once
    assert assembler.held_count() == 1
    rig.advance(WINDOW)
    rig.settle()
    assert rig.out.messages() == [images[:3], images[3:]]


def test_order_is_kept_per_customer(rig: Rig, mk: Make) -> None:
    assembler = rig.assembler()
    first, image, second = mk("text"), mk("image"), mk("text")
    assembler.submit(first)
    assembler.submit(image)
    rig.drain()
    rig.advance(WINDOW)
    rig.out.wait(2)  # the image's window ended: it went alone, after the first text
    assembler.submit(second)
    rig.out.wait(3)
    assert rig.out.messages() == [[first], [image], [second]]


def test_a_question_takes_the_attachments_before_it_in_order(rig: Rig, mk: Make) -> None:
    assembler = rig.assembler()
    messages = [mk("text"), mk("image"), mk("text"), mk("text")]
    for message in messages:
        assembler.submit(message)
    rig.out.wait(3)
    assert rig.out.messages() == [[messages[0]], messages[1:3], [messages[3]]]


def test_customers_are_independent(rig: Rig, mk: Make) -> None:
    assembler = rig.assembler()
    a_img, b_img = mk("image", user="wmA"), mk("image", user="wmB")
    a_txt, b_file = mk("text", user="wmA"), mk("file", user="wmB")
    assembler.submit(a_img)
    rig.drain("wmA")
    rig.advance(WINDOW / 2)
    assembler.submit(b_img)
    rig.drain("wmB")
    assembler.submit(a_txt)  # takes A's image; B's keeps waiting
    rig.out.wait(1)
    rig.drain("wmB")
    assert rig.out.messages() == [[a_img, a_txt]]
    rig.advance(WINDOW / 2)  # A's first window ends: nothing of B's is due
    rig.drain("wmB")
    assert len(rig.out.turns) == 1 and assembler.held_count() == 1
    assembler.submit(b_file)  # B's window starts again with each attachment
    rig.drain("wmB")
    rig.advance(WINDOW / 2 + 0.1)  # B's first window ended; the file's has not
    rig.drain("wmB")
    assert len(rig.out.turns) == 1 and assembler.held_count() == 2
    rig.advance(WINDOW)
    rig.settle()
    assert rig.out.messages() == [[a_img, a_txt], [b_img, b_file]]
    assert rig.out.turns[1].key == (KFID, "wmB")


def test_window_zero_holds_nothing(rig: Rig, mk: Make) -> None:
    assembler = rig.assembler(window=0)
    image, text = mk("image"), mk("text")
    assembler.submit(image)
    assembler.submit(text)
    rig.out.wait(2)
    assert rig.out.messages() == [[image], [text]]
    assert assembler.held_count() == 0


def test_windows_do_not_hold_threads() -> None:
    rig = Rig(threads=2)
    try:
        assembler = rig.assembler()
        messages = [_image_of(f"wm{n}") for n in range(20)]
        for message in messages:
            assert assembler.submit(message)
        for n in range(20):
            rig.drain(f"wm{n}")
        assert assembler.held_count() == 20  # twenty windows wait on two threads
        rig.advance(WINDOW)
        rig.out.wait(20)
        assert sorted(t.key[1] for t in rig.out.turns) == sorted(f"wm{n}" for n in range(20))
    finally:
        rig.workers.shutdown(5)


def _image_of(user: str) -> WechatComKfMessage:
    raw = {"msgid": f"m{next(_ids)}", "external_userid": user, "origin": 3, "msgtype": "image", "image": {}}
    item = parse_item(raw, KFID)
    assert isinstance(item, CustomerMessage)
    return WechatComKfMessage(item, None, Path("unused"))  # no media_id: never downloaded


def test_a_failing_on_turn_does_not_stop_the_customers_later_turns(rig: Rig, mk: Make) -> None:
    failed: list[Turn] = []

    def on_turn(turn: Turn) -> None:
        if not failed:
            failed.append(turn)
            raise RuntimeError("host queue full")
        rig.out(turn)

    assembler = rig.assembler(on_turn=on_turn)
    first, second, third = mk("image"), mk("text"), mk("text")
    assembler.submit(first)
    rig.drain()
    rig.advance(WINDOW)
    rig.settle()
    assembler.submit(second)
    assembler.submit(third)
    rig.out.wait(2)
    assert [t.messages for t in failed] == [[first]]
    assert rig.out.messages() == [[second], [third]]


def test_nothing_is_taken_after_the_workers_stopped(rig: Rig, mk: Make) -> None:
    assembler = rig.assembler()
    assembler.submit(mk("image"))
    rig.drain()
    assert rig.workers.shutdown(5)  # the held image stays pending in the store for the next start
    assert not assembler.submit(mk("text"))
    assert rig.out.turns == []


def test_voice_alone_stays_voice_for_the_host_to_transcribe(mk: Make) -> None:
    voice = mk("voice")
    turn = Turn((KFID, "wmA"), [voice])
    turn.prepare()
    assert turn.to_context_args() == (ContextType.VOICE, voice.content, {"kf_msgids": [voice.msg_id]})
    assert voice.content.endswith(".amr")


def test_voice_question_carries_the_attachments(mk: Make) -> None:
    image, doc, voice = mk("image"), mk("file"), mk("voice")
    turn = Turn((KFID, "wmA"), [image, doc, voice])
    turn.prepare()
    ctype, content, kwargs = turn.to_context_args()
    assert (ctype, content) == (ContextType.VOICE, voice.content)
    assert kwargs["image_paths"] == [image.content]
    assert "report.pdf" in kwargs["kf_attachments_text"]
    assert kwargs["kf_msgids"] == [image.msg_id, doc.msg_id, voice.msg_id]


def test_several_images_alone_are_described_together(mk: Make) -> None:
    images = [mk("image"), mk("image")]
    turn = Turn((KFID, "wmA"), images)
    turn.prepare()
    ctype, content, kwargs = turn.to_context_args()
    assert ctype == ContextType.TEXT
    assert "图片" in content and "回复" in content
    assert kwargs["image_paths"] == [m.content for m in images]


def test_failed_image_still_gives_the_bot_something_to_answer(mk: Make) -> None:
    broken, text = mk("image", {"media_id": "BROKEN"}), mk("text", {"content": "看看这个"})
    turn = Turn((KFID, "wmA"), [broken, text])
    turn.prepare()
    ctype, content, kwargs = turn.to_context_args()
    assert ctype == ContextType.TEXT
    assert "图片下载失败" in content and content.endswith("看看这个")
    assert "image_paths" not in kwargs


def test_non_image_attachment_alone_asks_for_an_answer(mk: Make) -> None:
    link = mk("link", {"title": "退款政策", "url": "https://example.com/r"})
    turn = Turn((KFID, "wmA"), [link])
    turn.prepare()
    ctype, content, kwargs = turn.to_context_args()
    assert ctype == ContextType.TEXT
    assert "退款政策" in content and "请根据以上内容回复用户" in content
    assert kwargs == {"kf_msgids": [link.msg_id]}
