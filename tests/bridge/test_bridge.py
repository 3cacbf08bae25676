import pytest

import config
from bridge.bridge import CHAT, TEXT_TO_VOICE, VOICE_TO_TEXT, Bridge
from bridge.context import Context, ContextType
from bridge.reply import Reply, ReplyType


class StubBot:
    def __init__(self):
        self.calls = []

    def reply(self, query, context):
        self.calls.append((query, context))
        return Reply(ReplyType.TEXT, f"echo:{query}")


class StubVoice:
    def voiceToText(self, path):  # noqa: N802 - CoW's name
        return Reply(ReplyType.TEXT, f"heard:{path}")

    def textToVoice(self, text):  # noqa: N802
        return Reply(ReplyType.VOICE, f"/tmp/{len(text)}.mp3")


def load(tmp_path, **overrides):
    path = tmp_path / "config.json"
    path.write_text("{}", encoding="utf-8")
    config.load_config(str(path), overrides=overrides, environ={})
    Bridge().reset()


@pytest.fixture(autouse=True)
def fresh_bridge():
    saved = config.config
    Bridge._drop_instance()
    yield
    Bridge._drop_instance()
    config.config = saved


def test_bridge_is_one_instance():
    assert Bridge() is Bridge()


def test_chat_goes_to_the_registered_bot():
    bot = StubBot()
    Bridge().set_bot(bot)
    ctx = Context(ContextType.TEXT, "hi", {"session_id": "s"})
    reply = Bridge().fetch_reply_content("hi", ctx)
    assert (reply.type, reply.content) == (ReplyType.TEXT, "echo:hi")
    assert bot.calls == [("hi", ctx)]
    assert Bridge().get_bot(CHAT) is bot


def test_bot_type_is_auto_resolved_from_the_api_key(tmp_path):
    load(tmp_path)
    assert Bridge().get_bot_type(CHAT) == "echo"
    load(tmp_path, open_ai_api_key="sk-x")
    assert Bridge().get_bot_type(CHAT) == "openai"
    load(tmp_path, open_ai_api_key="sk-x", bot_type="custom")
    assert Bridge().get_bot_type(CHAT) == "custom"


def test_reset_forgets_registered_bots():
    Bridge().set_bot(StubBot())
    Bridge().reset()
    assert CHAT not in Bridge().bots


def test_reset_bot_rereads_the_configuration_like_cow(tmp_path):
    # godcmd's "#model <name>": conf()["model"] = name, then Bridge().reset_bot().
    load(tmp_path, open_ai_api_key="sk-x", model="m-1")
    first = Bridge().get_bot(CHAT)
    assert first.model == "m-1"
    extra = Bridge().find_chat_bot("openai")
    assert Bridge().find_chat_bot("openai") is extra
    assert Bridge().chat_bots == {"openai": extra}
    config.conf()["model"] = "gpt-4o"
    Bridge().reset_bot()
    assert Bridge().chat_bots == {}
    second = Bridge().get_bot(CHAT)
    assert second is not first
    assert second.model == "gpt-4o"
    config.conf()["bot_type"] = "echo"
    Bridge().reset_bot()
    assert Bridge().get_bot_type(CHAT) == "echo"


def test_find_chat_bot_refuses_a_bot_type_this_runtime_lacks(tmp_path):
    load(tmp_path, open_ai_api_key="sk-x")
    with pytest.raises(ValueError, match="unknown bot_type 'linkai'"):
        Bridge().find_chat_bot("linkai")
    assert Bridge().chat_bots == {}


def test_voice_routes_to_the_voice_provider():
    Bridge().set_bot(StubVoice(), VOICE_TO_TEXT)
    Bridge().set_bot(StubVoice(), TEXT_TO_VOICE)
    assert Bridge().fetch_voice_to_text("a.wav").content == "heard:a.wav"
    assert Bridge().fetch_text_to_voice("hello").type == ReplyType.VOICE


def test_voice_without_provider_answers_instead_of_failing(tmp_path):
    load(tmp_path, voice_to_text="", text_to_voice="")
    voice = Bridge().fetch_voice_to_text("a.wav")
    assert (voice.type, voice.content) == (ReplyType.INFO, "暂不支持语音消息，请发送文字。")  # Chinese only
    reply = Bridge().fetch_text_to_voice("plain")
    assert (reply.type, reply.content) == (ReplyType.TEXT, "plain")
