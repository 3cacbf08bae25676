import logging
import re
import threading
import time

import pytest

import config
from bridge.bridge import TEXT_TO_VOICE, VOICE_NOT_ENABLED, VOICE_TO_TEXT, Bridge
from bridge.context import ContextType
from bridge.reply import Reply, ReplyType
from channel.chat_channel import BOT_FAILURE_TEXT, UNSENDABLE_REPLY_TEXT, ChatChannel
from channel.chat_message import ChatMessage
from common import memory
from plugins import Event, EventAction, Plugin, PluginManager


class Msg(ChatMessage):
    def __init__(self, user, content="", ctype=ContextType.TEXT):
        super().__init__(None)
        self.other_user_id = self.from_user_id = user
        self.content = content
        self.ctype = ctype


class RecordingChannel(ChatChannel):
    NOT_SUPPORT_REPLYTYPE = [ReplyType.IMAGE]  # noqa: RUF012

    def __init__(self, failures=()):
        super().__init__()
        self.sent = []
        self.failures = list(failures)
        self.attempts = 0
        self.sent_event = threading.Event()

    def send(self, reply, context):
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((reply.type, reply.content, context["receiver"]))
        self.sent_event.set()


class Bot:
    def __init__(self, sleep=0.0):
        self.sleep = sleep
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.contexts = []

    def reply(self, query, context):
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.contexts.append(context)
        time.sleep(self.sleep)
        with self.lock:
            self.active -= 1
        return Reply(ReplyType.TEXT, f"re:{query}")


@pytest.fixture(autouse=True)
def runtime(tmp_path):
    saved = config.config
    path = tmp_path / "config.json"
    path.write_text("{}", encoding="utf-8")
    config.load_config(str(path), overrides={"send_retry_delay_seconds": 0.01}, environ={})
    Bridge._drop_instance()
    PluginManager.reset(str(tmp_path))
    yield
    Bridge._drop_instance()
    PluginManager.reset()
    config.config = saved


def set_conf(**values):
    config.conf().update(values)


def compose(channel, text, user="u1"):
    return channel._compose_context(ContextType.TEXT, text, msg=Msg(user, text))


def test_compose_sets_session_receiver_and_default_prefix_passes_everything():
    channel = RecordingChannel()
    ctx = compose(channel, "  hello ")
    assert (ctx.type, ctx.content) == (ContextType.TEXT, "hello")
    assert (ctx["session_id"], ctx["receiver"], ctx["isgroup"]) == ("u1", "u1", False)
    assert ctx["origin_ctype"] == ContextType.TEXT


def test_single_chat_prefix_filters_and_strips():
    set_conf(single_chat_prefix=["bot"])
    channel = RecordingChannel()
    assert compose(channel, "hello") is None
    assert compose(channel, "bot hello").content == "hello"
    set_conf(single_chat_prefix=[])  # never silence every customer by accident
    assert compose(channel, "hello").content == "hello"


def test_handle_is_synchronous_and_decorates_text():
    set_conf(single_chat_reply_prefix="[bot] ", single_chat_reply_suffix=" ~")
    Bridge().set_bot(Bot())
    channel = RecordingChannel()
    channel._handle(compose(channel, "hi"))
    assert channel.sent == [(ReplyType.TEXT, "[bot] re:hi ~", "u1")]  # sent before _handle returned


@pytest.mark.parametrize(("rtype", "prefix"), [(ReplyType.ERROR, "[ERROR]\n"), (ReplyType.INFO, "[INFO]\n")])
def test_error_and_info_are_prefixed(rtype, prefix):
    class Fixed:
        def reply(self, query, context):
            return Reply(rtype, "msg")

    Bridge().set_bot(Fixed())
    channel = RecordingChannel()
    channel._handle(compose(channel, "hi"))
    assert channel.sent == [(rtype, prefix + "msg", "u1")]


def test_unsupported_reply_type_becomes_a_plain_apology_and_the_type_is_logged(caplog):
    class Picture:
        def reply(self, query, context):
            return Reply(ReplyType.IMAGE, object())

    Bridge().set_bot(Picture())
    channel = RecordingChannel()
    with caplog.at_level(logging.ERROR, logger="channel.chat_channel"):
        channel._handle(compose(channel, "hi"))
    assert channel.sent == [(ReplyType.ERROR, "[ERROR]\n抱歉，这条回复无法发送。", "u1")]  # no enum name
    assert any("IMAGE" in r.getMessage() and "RecordingChannel" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("text", [BOT_FAILURE_TEXT, UNSENDABLE_REPLY_TEXT, VOICE_NOT_ENABLED])
def test_customer_facing_texts_are_chinese_only(text):
    assert text and not re.search(r"[A-Za-z]", text), text


def test_bot_exception_still_answers_the_customer():
    class Broken:
        def reply(self, query, context):
            raise RuntimeError("model down")

    Bridge().set_bot(Broken())
    channel = RecordingChannel()
    channel._handle(compose(channel, "hi"))
    assert channel.sent == [(ReplyType.ERROR, "[ERROR]\n抱歉，暂时无法回答，请稍后再试。", "u1")]


def test_send_retries_only_transient_errors_and_is_capped():
    Bridge().set_bot(Bot())

    class Retryable(Exception):
        retryable = True

    channel = RecordingChannel(failures=[ConnectionError("reset"), TimeoutError(), Retryable()])
    set_conf(send_retry_attempts=3)
    channel._handle(compose(channel, "hi"))
    assert channel.attempts == 4 and len(channel.sent) == 1

    channel = RecordingChannel(failures=[ValueError("bad request")])
    channel._handle(compose(channel, "hi"))
    assert channel.attempts == 1 and channel.sent == []  # never blindly retried

    set_conf(send_retry_attempts=2)
    channel = RecordingChannel(failures=[ConnectionError()] * 5)
    channel._handle(compose(channel, "hi"))
    assert channel.attempts == 3 and channel.sent == []


def test_voice_is_transcribed_then_answered_as_text(tmp_path):
    class Ears:
        def __init__(self):
            self.paths = []

        def voiceToText(self, path):  # noqa: N802
            self.paths.append(path)
            return Reply(ReplyType.TEXT, "what time is it")

    ears, bot = Ears(), Bot()
    Bridge().set_bot(ears, VOICE_TO_TEXT)
    Bridge().set_bot(bot)
    set_conf(single_chat_prefix=["bot"])  # a voice message needs no prefix
    audio = tmp_path / "v.mp3"
    audio.write_bytes(b"not really audio")
    channel = RecordingChannel()
    ctx = channel._compose_context(
        ContextType.VOICE, str(audio), msg=Msg("u2", str(audio), ContextType.VOICE)
    )
    assert ctx is not None
    channel._handle(ctx)
    assert len(ears.paths) == 1
    assert channel.sent == [(ReplyType.TEXT, "re:what time is it", "u2")]
    assert bot.contexts[0]["origin_ctype"] == ContextType.VOICE


def test_voice_reply_voice_converts_the_answer():
    class Mouth:
        def textToVoice(self, text):  # noqa: N802
            return Reply(ReplyType.VOICE, "/data/answer.mp3")

    class Ears:
        def voiceToText(self, path):  # noqa: N802
            return Reply(ReplyType.TEXT, "hello")

    Bridge().set_bot(Ears(), VOICE_TO_TEXT)
    Bridge().set_bot(Mouth(), TEXT_TO_VOICE)
    Bridge().set_bot(Bot())
    set_conf(voice_reply_voice=True)
    channel = RecordingChannel()
    ctx = channel._compose_context(ContextType.VOICE, "missing.amr", msg=Msg("u3", "", ContextType.VOICE))
    assert ctx is not None
    assert ctx["desire_rtype"] == ReplyType.VOICE
    channel._handle(ctx)
    assert channel.sent == [(ReplyType.VOICE, "/data/answer.mp3", "u3")]


def test_image_is_kept_for_the_session_and_given_to_the_next_text():
    bot = Bot()
    Bridge().set_bot(bot)
    channel = RecordingChannel()
    img = channel._compose_context(
        ContextType.IMAGE, "/data/p.png", msg=Msg("u4", "/data/p.png", ContextType.IMAGE)
    )
    assert img is not None
    channel._handle(img)
    assert channel.sent == []  # no reply to a bare image
    channel._handle(compose(channel, "what is this?", user="u4"))
    assert bot.contexts[0]["image_paths"] == ["/data/p.png"]
    assert memory.USER_IMAGE_CACHE.get("u4") is None


def register(name, priority, handlers):
    class P(Plugin):
        def __init__(self):
            super().__init__()
            self.handlers = handlers

    PluginManager().register(name=name, desire_priority=priority)(P)
    PluginManager().activate_plugins()


def test_plugin_break_pass_replaces_the_bot():
    bot = Bot()
    Bridge().set_bot(bot)

    def answer(e_context):
        e_context["reply"] = Reply(ReplyType.TEXT, "from plugin")
        e_context.action = EventAction.BREAK_PASS

    register("faq", 5, {Event.ON_HANDLE_CONTEXT: answer})
    channel = RecordingChannel()
    channel._handle(compose(channel, "hi"))
    assert channel.sent == [(ReplyType.TEXT, "from plugin", "u1")]
    assert bot.contexts == []


def test_plugin_can_drop_a_message_on_receive_and_on_send():
    Bridge().set_bot(Bot())

    def drop(e_context):
        e_context["context"] = None
        e_context.action = EventAction.BREAK_PASS

    register("drop", 1, {Event.ON_RECEIVE_MESSAGE: drop})
    channel = RecordingChannel()
    assert compose(channel, "spam") is None

    PluginManager.reset(PluginManager().plugins_dir)

    def silence(e_context):
        e_context.action = EventAction.BREAK_PASS

    register("quiet", 1, {Event.ON_SEND_REPLY: silence})
    channel._handle(compose(channel, "hi"))
    assert channel.sent == []


def test_hundred_sessions_through_produce_keep_order_and_run_concurrently():
    bot = Bot(sleep=0.2)
    Bridge().set_bot(bot)
    channel = RecordingChannel()
    for n in range(3):
        for s in range(100):
            channel.produce(compose(channel, f"m{n}", user=f"s{s}"))
    channel.stop()  # drains within shutdown_timeout_seconds
    assert len(channel.sent) == 300
    for s in range(100):
        assert [c for _, c, r in channel.sent if r == f"s{s}"] == ["re:m0", "re:m1", "re:m2"]
    assert bot.peak >= 32


def test_cancel_session_drops_queued_contexts():
    gate = threading.Event()

    class Slow:
        def reply(self, query, context):
            gate.wait(5)
            return Reply(ReplyType.TEXT, query)

    Bridge().set_bot(Slow())
    channel = RecordingChannel()
    for n in range(4):
        channel.produce(compose(channel, f"m{n}", user="s"))
    deadline = time.monotonic() + 5
    while channel._get_dispatcher().stats()["running"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert channel.cancel_session("s") == 3
    gate.set()
    channel.stop()
    assert [c for _, c, _ in channel.sent] == ["m0"]
