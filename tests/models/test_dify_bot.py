"""The Dify bot against a fake Dify app API over real HTTP: conversations, streaming, images, errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bridge.context import Context, ContextType
from bridge.reply import ReplyType
from models.dify_bot import DifyBot
from models.openai_http import OpenAIHttpClient
from models.streaming import ON_PARTIAL_TEXT
from tests.media_samples import tiny_png
from tests.models.fake_dify import API_KEY, FakeDify


@pytest.fixture
def dify() -> Iterator[FakeDify]:
    with FakeDify() as fake:
        yield fake


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_bot(fake: FakeDify, **kwargs) -> DifyBot:
    client = OpenAIHttpClient(API_KEY, fake.base_url, timeout=5, backoff_base=0.01, backoff_cap=0.02)
    return DifyBot(client, **kwargs)


def ctx(text: str, session: str = "cust-1", **extra) -> Context:
    return Context(ContextType.TEXT, text, {"session_id": session, **extra})


def ask(bot: DifyBot, text: str, session: str = "cust-1", **extra):
    return bot.reply(text, ctx(text, session, **extra))


def test_one_conversation_per_customer_across_turns_with_the_customer_as_user(dify):
    bot = make_bot(dify)
    first = ask(bot, "你好")
    assert (first.type, first.content) == (ReplyType.TEXT, "Dify答1：你好")
    assert ask(bot, "还在吗").content == "Dify答2：还在吗"  # the same Dify conversation, turn 2
    assert ask(bot, "我是另一位", "cust-2").content == "Dify答1：我是另一位"
    a1, a2, b1 = dify.requests
    assert a1["conversation_id"] == "" and a2["conversation_id"] in dify.conversations
    assert b1["conversation_id"] == ""
    assert (a1["user"], a2["user"], b1["user"]) == ("cust-1", "cust-1", "cust-2")
    assert a1["response_mode"] == "blocking" and a1["inputs"] == {}
    assert len(dify.conversations) == 2


def test_the_conversation_is_forgotten_when_the_session_expires(dify):
    clock = Clock()
    bot = make_bot(dify, expires_in_seconds=60, clock=clock)
    ask(bot, "第一句")
    clock.now += 30
    ask(bot, "第二句")
    assert dify.requests[-1]["conversation_id"] != ""
    clock.now += 61
    assert ask(bot, "过了很久").content == "Dify答1：过了很久"
    assert dify.requests[-1]["conversation_id"] == ""


def test_reset_command_starts_a_new_conversation(dify):
    bot = make_bot(dify)
    ask(bot, "你好")
    reply = ask(bot, "#清除记忆")
    assert reply.type == ReplyType.INFO
    ask(bot, "重新开始")
    assert dify.requests[-1]["conversation_id"] == "" and len(dify.requests) == 2


def test_a_conversation_deleted_in_dify_is_replaced_by_a_new_one(dify):
    bot = make_bot(dify)
    ask(bot, "你好")
    dify.forget_conversations()  # an operator deleted it in Dify's console
    reply = ask(bot, "还记得我吗")
    assert (reply.type, reply.content) == (ReplyType.TEXT, "Dify答1：还记得我吗")
    assert dify.requests[-2]["conversation_id"] != "" and dify.requests[-1]["conversation_id"] == ""
    ask(bot, "继续")
    (new_conversation,) = dify.conversations
    assert dify.requests[-1]["conversation_id"] == new_conversation


def test_streaming_gives_the_same_reply_and_tells_the_partial_text_seam(dify):
    bot = make_bot(dify, stream=True)
    seen: list[str] = []
    reply = ask(bot, "介绍一下你们的退货政策", **{ON_PARTIAL_TEXT: seen.append})
    expected = "Dify答1：介绍一下你们的退货政策"
    assert (reply.type, reply.content) == (ReplyType.TEXT, expected)
    assert dify.requests[-1]["response_mode"] == "streaming"
    assert len(seen) > 3 and seen[-1] == expected
    assert all(expected.startswith(part) for part in seen)  # the text so far, growing
    assert ask(bot, "第二句").content == "Dify答2：第二句"  # the streamed conversation id was kept


def test_agent_apps_always_stream_and_their_agent_messages_are_the_answer(dify):
    dify.agent_events = True
    bot = make_bot(dify, app_type="agent")
    reply = ask(bot, "查一下订单")
    assert (reply.type, reply.content) == (ReplyType.TEXT, "Dify答1：查一下订单")
    assert dify.requests[-1]["response_mode"] == "streaming"


def test_a_partial_text_callback_that_raises_does_not_cost_the_answer(dify):
    def broken(_text: str) -> None:
        raise RuntimeError("boom")

    reply = ask(make_bot(dify, stream=True), "你好", **{ON_PARTIAL_TEXT: broken})
    assert (reply.type, reply.content) == (ReplyType.TEXT, "Dify答1：你好")


@pytest.mark.parametrize("stream", [False, True])
def test_dify_errors_become_an_error_reply_without_the_key(dify, stream):
    dify.fail_next = [400]
    reply = ask(make_bot(dify, stream=stream), "你好")
    assert reply.type == ReplyType.ERROR and API_KEY not in reply.content
    ask(make_bot(dify, stream=stream), "再来")
    assert dify.requests[-1]["conversation_id"] == ""  # nothing was remembered for the failed turn


def test_an_error_event_in_the_stream_is_an_error_reply(dify, caplog):
    dify.error_event = {"status": 400, "code": "completion_request_error", "message": "model down"}
    bot = make_bot(dify, stream=True)
    assert ask(bot, "你好").type == ReplyType.ERROR
    # Dify's own code reaches the operator's log (not a vague "connection" failure).
    assert "stream_error status=400 code=completion_request_error" in caplog.text
    dify.error_event = None
    ask(bot, "再试")
    assert dify.requests[-1]["conversation_id"] == ""


def test_a_stream_cut_before_message_end_is_an_error_not_half_an_answer(dify):
    dify.cut_stream = True
    assert ask(make_bot(dify, stream=True), "一个很长的问题需要很长的回答").type == ReplyType.ERROR


@pytest.mark.parametrize("status", [429, 502])
def test_rate_limits_and_server_errors_are_retried_with_the_shared_policy(dify, status):
    dify.fail_next = [status]
    reply = ask(make_bot(dify), "你好")
    assert (reply.type, reply.content) == (ReplyType.TEXT, "Dify答1：你好")
    dify.fail_next = [500, 500, 500]
    assert ask(make_bot(dify), "又来").type == ReplyType.ERROR  # 3 attempts, then the error


def test_a_wrong_key_is_an_error_reply(dify):
    client = OpenAIHttpClient("app-wrong-key", dify.base_url, timeout=5)
    reply = DifyBot(client).reply("你好", ctx("你好"))
    assert reply.type == ReplyType.ERROR and "app-wrong-key" not in reply.content


@pytest.mark.parametrize("new_format", [False, True])
def test_images_are_uploaded_and_passed_as_files_when_the_app_accepts_them(dify, tmp_path, new_format):
    dify.new_parameters_format = new_format
    image = tmp_path / "photo.png"
    image.write_bytes(tiny_png())
    reply = ask(make_bot(dify), "这是什么", image_paths=[str(image)])
    assert reply.content == "Dify答1：这是什么（1 个文件）"
    (upload,) = dify.uploads
    assert upload["user"] == "cust-1" and upload["size"] == image.stat().st_size
    files = dify.requests[-1]["files"]
    assert files == [{"type": "image", "transfer_method": "local_file", "upload_file_id": upload["id"]}]


def test_images_are_not_sent_to_an_app_that_takes_none_and_the_model_is_told(dify, tmp_path):
    dify.images_enabled = False
    image = tmp_path / "photo.png"
    image.write_bytes(tiny_png())
    bot = make_bot(dify)
    ask(bot, "", image_paths=[str(image)])
    ask(bot, "再看看", image_paths=[str(image)])
    assert dify.uploads == [] and "files" not in dify.requests[-1]
    assert dify.requests[0]["query"] == "[用户还发送了 1 张图片，当前无法查看图片内容]"
    assert dify.parameters_calls == 1  # the app's answer is cached


def test_create_bot_reads_the_dify_settings(dify, monkeypatch):
    from config import conf
    from models.bot_factory import create_bot

    cfg = conf()
    for key, value in {
        "dify_api_base": dify.base_url,
        "dify_api_key": API_KEY,
        "dify_app_type": "Chatflow",
        "stream": True,
    }.items():
        monkeypatch.setitem(cfg, key, value)
    bot = create_bot("dify")
    assert isinstance(bot, DifyBot) and bot.app_type == "chatflow" and bot.streaming
    assert bot.reply("你好", ctx("你好")).content == "Dify答1：你好"
