"""A godcmd-style command plugin against the OpenAI-compatible bot (fake OpenAI server, real HTTP).

Upstream's godcmd (CoW 1.7.6, 2.0.8 and CowAgent 2.1.7 alike) handles ``#reset``, ``#resetall`` and
``#model <name>`` with ``Bridge().get_bot_type("chat")`` compared against ``common.const`` bot type names,
``Bridge().get_bot("chat").sessions.clear_session(session_id)`` / ``.clear_all_session()``,
``Bridge().chat_bots.get(bottype)``, ``channel.cancel_session(session_id)`` / ``cancel_all_session()``,
``const.MODEL_LIST``, ``const.GPT35``, ``conf()["model"] = ...`` and ``Bridge().reset_bot()``. The plugin
below (written for this test, in upstream's manner) makes those same calls.
"""

import textwrap

import pytest

import config
from bridge.bridge import Bridge
from bridge.context import ContextType
from bridge.reply import ReplyType
from channel.chat_channel import ChatChannel
from channel.chat_message import ChatMessage
from common import const
from models.openai_chat_bot import OpenAIChatBot
from plugins import PluginManager
from plugins.plugin_manager import PLUGIN_FAILURE_TEXT
from sandbox.fake_openai import FakeOpenAIServer

PASSWORD = "pw-4321"

MINICMD = """
# encoding:utf-8

import plugins
from bridge.bridge import Bridge
from bridge.context import ContextType
from bridge.reply import Reply, ReplyType
from common import const
from config import conf
from plugins import *


@plugins.register(
    name="Minicmd",
    desire_priority=999,
    hidden=True,
    desc="godcmd's session commands",
    version="0.1",
    author="tests",
)
class Minicmd(Plugin):
    def __init__(self):
        super().__init__()
        self.password = "PASSWORD"
        self.admin_users = []
        self.handlers[Event.ON_HANDLE_CONTEXT] = self.on_handle_context

    def on_handle_context(self, e_context: EventContext):
        if e_context["context"].type != ContextType.TEXT:
            return
        content = e_context["context"].content
        if not content.startswith("#"):
            return
        channel = e_context["channel"]
        user = e_context["context"]["receiver"]
        session_id = e_context["context"]["session_id"]
        bottype = Bridge().get_bot_type("chat")
        bot = Bridge().get_bot("chat")
        command_parts = content[1:].strip().split()
        cmd = command_parts[0]
        args = command_parts[1:]
        isadmin = user in self.admin_users
        if cmd == "auth":
            if len(args) == 1 and args[0] == self.password:
                self.admin_users.append(user)
                ok, result = True, "认证成功"
            else:
                ok, result = False, "认证失败"
        elif cmd == "reset":
            if bottype in [const.OPEN_AI, const.OPENAI, const.CHATGPT, const.CHATGPTONAZURE, const.LINKAI,
                           const.BAIDU, const.QIANFAN, const.XUNFEI, const.QWEN, const.QWEN_DASHSCOPE,
                           const.GEMINI, const.ZHIPU_AI, const.CLAUDEAPI]:
                bot.sessions.clear_session(session_id)
                if Bridge().chat_bots.get(bottype):
                    Bridge().chat_bots.get(bottype).sessions.clear_session(session_id)
                channel.cancel_session(session_id)
                ok, result = True, "会话已重置"
            else:
                ok, result = False, "当前对话机器人不支持重置会话"
        elif cmd == "resetall":
            if not isadmin:
                ok, result = False, "需要管理员权限才能执行该指令"
            elif bottype in [const.OPEN_AI, const.OPENAI, const.CHATGPT, const.CHATGPTONAZURE, const.LINKAI,
                             const.BAIDU, const.QIANFAN, const.XUNFEI, const.QWEN, const.QWEN_DASHSCOPE,
                             const.GEMINI, const.ZHIPU_AI, const.MOONSHOT, const.MODELSCOPE]:
                channel.cancel_all_session()
                bot.sessions.clear_all_session()
                ok, result = True, "重置所有会话成功"
            else:
                ok, result = False, "当前对话机器人不支持重置会话"
        elif cmd == "model":
            if not isadmin:
                ok, result = False, "需要管理员权限执行"
            elif len(args) == 0:
                ok, result = True, "当前模型为: " + str(conf().get("model") or const.GPT35)
            elif args[0] not in const.MODEL_LIST:
                ok, result = False, "模型名称不存在"
            else:
                conf()["model"] = const.GPT4_TURBO_PREVIEW if args[0] == "gpt-4-turbo" else args[0]
                Bridge().reset_bot()
                ok, result = True, "模型设置为: " + str(conf().get("model") or const.GPT35)
        elif cmd == "broken":
            # What #reset did before common.const had godcmd's names: an AttributeError mid-command.
            ok, result = bottype == const.NO_SUCH_BOT_TYPE, "unreachable"
        else:
            return
        reply = Reply()
        reply.type = ReplyType.INFO if ok else ReplyType.ERROR
        reply.content = result
        e_context["reply"] = reply
        e_context.action = EventAction.BREAK_PASS
"""


class _Msg(ChatMessage):
    def __init__(self, user, content):
        super().__init__(None)
        self.other_user_id = self.from_user_id = user
        self.content = content
        self.ctype = ContextType.TEXT


class _Channel(ChatChannel):
    def __init__(self):
        super().__init__()
        self.sent = []
        self.cancelled = []

    def send(self, reply, context):
        self.sent.append((reply.type, reply.content, context["receiver"]))

    def cancel_session(self, session_id):
        self.cancelled.append(session_id)
        return super().cancel_session(session_id)

    def cancel_all_session(self):
        self.cancelled.append("*")
        return super().cancel_all_session()


@pytest.fixture
def fake():
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def host(tmp_path, fake):
    saved = config.config
    plugins_dir = tmp_path / "plugins"
    (plugins_dir / "minicmd").mkdir(parents=True)
    body = textwrap.dedent(MINICMD).replace("PASSWORD", PASSWORD)
    (plugins_dir / "minicmd" / "__init__.py").write_text("from .minicmd import *\n", encoding="utf-8")
    (plugins_dir / "minicmd" / "minicmd.py").write_text(body, encoding="utf-8")
    path = tmp_path / "config.json"
    path.write_text("{}", encoding="utf-8")
    overrides = {"open_ai_api_key": "sk-test", "open_ai_api_base": fake.base_url, "model": "m-1"}
    config.load_config(str(path), overrides=overrides, environ={})
    Bridge._drop_instance()
    manager = PluginManager.reset(str(plugins_dir))
    manager.load_plugins()
    assert list(manager.instances) == ["MINICMD"]
    channel = _Channel()
    yield channel
    channel.stop()
    Bridge._drop_instance()
    PluginManager.reset()
    config.plugin_config.clear()
    config.config = saved


def say(channel, user, text):
    """One customer message through the channel pipeline; returns what was sent for it."""
    before = len(channel.sent)
    channel._handle(channel._compose_context(ContextType.TEXT, text, msg=_Msg(user, text)))
    return channel.sent[before:]


def history(body):
    """The user and assistant messages of one request, in order."""
    return [m["content"] for m in body["messages"] if m["role"] in ("user", "assistant")]


def test_the_bot_is_our_openai_compatible_bot_with_a_cow_type(host):
    assert Bridge().get_bot_type("chat") == const.OPENAI
    assert isinstance(Bridge().get_bot("chat"), OpenAIChatBot)


def test_reset_clears_the_customers_memory_and_no_one_elses(host, fake):
    say(host, "alice", "我的订单号是 A123")
    say(host, "bob", "我是 bob")
    say(host, "alice", "订单到哪了？")
    assert history(fake.requests[-1]) == ["我的订单号是 A123", "答：我的订单号是 A123", "订单到哪了？"]
    asked = len(fake.requests)

    assert say(host, "alice", "#reset") == [(ReplyType.INFO, "[INFO]\n会话已重置", "alice")]
    assert len(fake.requests) == asked  # the command never reached the model
    assert host.cancelled == ["alice"]  # and alice's queued messages were dropped

    assert say(host, "alice", "还记得订单号吗？") == [(ReplyType.TEXT, "答：还记得订单号吗？", "alice")]
    assert history(fake.requests[-1]) == ["还记得订单号吗？"]  # no earlier turn, no "#reset"
    say(host, "bob", "我是谁？")
    assert history(fake.requests[-1]) == ["我是 bob", "答：我是 bob", "我是谁？"]


def test_reset_also_clears_the_bridges_extra_chat_bot(host, fake):
    extra = Bridge().find_chat_bot(const.OPENAI)
    assert Bridge().chat_bots == {const.OPENAI: extra}
    assert extra is not Bridge().get_bot("chat")
    extra.memory.add_turn("alice", "q", "a")
    say(host, "alice", "#reset")
    assert extra.memory.history("alice") == []


def test_resetall_is_for_admins_and_clears_every_customer(host, fake):
    say(host, "alice", "我的订单号是 A123")
    say(host, "bob", "我是 bob")
    asked = len(fake.requests)
    refused = (ReplyType.ERROR, "[ERROR]\n需要管理员权限才能执行该指令", "alice")
    assert say(host, "alice", "#resetall") == [refused]
    assert say(host, "boss", f"#auth {PASSWORD}") == [(ReplyType.INFO, "[INFO]\n认证成功", "boss")]
    assert say(host, "boss", "#resetall") == [(ReplyType.INFO, "[INFO]\n重置所有会话成功", "boss")]
    assert host.cancelled == ["*"]
    assert len(fake.requests) == asked
    say(host, "alice", "在吗？")
    assert history(fake.requests[-1]) == ["在吗？"]
    say(host, "bob", "在吗？")
    assert history(fake.requests[-1]) == ["在吗？"]


def test_model_switches_the_model_of_the_next_request(host, fake):
    say(host, "alice", "你好")
    assert fake.requests[-1]["model"] == "m-1"
    asked = len(fake.requests)
    say(host, "boss", f"#auth {PASSWORD}")
    assert say(host, "boss", "#model") == [(ReplyType.INFO, "[INFO]\n当前模型为: m-1", "boss")]
    assert say(host, "boss", "#model no-such-model") == [(ReplyType.ERROR, "[ERROR]\n模型名称不存在", "boss")]
    assert say(host, "boss", "#model gpt-4o") == [(ReplyType.INFO, "[INFO]\n模型设置为: gpt-4o", "boss")]
    assert len(fake.requests) == asked
    say(host, "alice", "再问一次")
    assert fake.requests[-1]["model"] == "gpt-4o"
    # As in CoW, the new bot starts with an empty memory.
    assert history(fake.requests[-1]) == ["再问一次"]
    assert say(host, "boss", "#model gpt-4-turbo")[0][1] == f"[INFO]\n模型设置为: {const.GPT4_TURBO_PREVIEW}"


def test_a_command_that_raises_is_not_sent_to_the_model(host, fake):
    say(host, "alice", "我的订单号是 A123")
    asked = len(fake.requests)
    assert say(host, "alice", "#broken") == [(ReplyType.ERROR, f"[ERROR]\n{PLUGIN_FAILURE_TEXT}", "alice")]
    assert len(fake.requests) == asked
    say(host, "alice", "订单号是多少？")
    assert history(fake.requests[-1]) == ["我的订单号是 A123", "答：我的订单号是 A123", "订单号是多少？"]


def test_with_the_echo_bot_reset_is_refused_politely(host, fake):
    config.conf()["bot_type"] = const.ECHO
    Bridge().reset_bot()
    refused = (ReplyType.ERROR, "[ERROR]\n当前对话机器人不支持重置会话", "alice")
    assert say(host, "alice", "#reset") == [refused]
    assert fake.requests == []
