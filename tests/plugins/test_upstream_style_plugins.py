"""Plugins written the way upstream CoW's bundled ones are (godcmd, hello, keyword ...).

Each test writes ``<plugins_dir>/greeter/__init__.py`` (``from .greeter import *``) and ``greeter.py``,
which does ``from plugins import *`` and then uses ``os``, ``json``, ``logger``, ``conf`` ... without
importing them, registers with ``enabled=...`` and answers "hello" with BREAK_PASS.
"""

import json
import logging
import os
import textwrap
import threading

import pytest

import config
import plugins
from bridge.bridge import Bridge
from bridge.context import Context, ContextType
from bridge.reply import Reply, ReplyType
from channel.chat_channel import ChatChannel
from channel.chat_message import ChatMessage
from plugins import Event, EventAction, EventContext, PluginManager

UPSTREAM_STAR_NAMES = {
    "Enum", "Event", "EventAction", "EventContext", "Plugin", "PluginManager", "conf", "event",
    "instance", "json", "logger", "os", "pconf", "plugin", "plugin_config", "plugin_manager",
    "register", "write_plugin_config",
}  # fmt: skip

GREETER = """
# encoding:utf-8

import plugins
from bridge.context import ContextType
from bridge.reply import Reply, ReplyType
from plugins import *

# Module level, as upstream plugins do: every one of these comes from ``from plugins import *``.
STAR_SEEN = {
    "logger": logger.name,
    "os": os.path.basename(__file__),
    "json": json.dumps({"a": 1}),
    "conf": conf().get("plugin_trigger_prefix", "$"),
    "pconf": pconf("greeter"),
    "manager": PluginManager() is plugins.instance,
}


@plugins.register(
    name="Greeter",
    desire_priority=7,
    hidden=True,
    desc="answers hello",
    version="0.2",
    author="tests",
    enabled=ENABLED,
)
class Greeter(Plugin):
    def __init__(self):
        super().__init__()
        self.config = super().load_config()
        if not self.config:
            template = os.path.join(self.path, "config.json.template")
            with open(template, "r", encoding="utf-8") as f:
                self.config = json.load(f)
        self.greeting = self.config.get("greeting", "hi")
        logger.info("[Greeter] inited")
        self.handlers[Event.ON_HANDLE_CONTEXT] = self.on_handle_context

    def on_handle_context(self, e_context: EventContext):
        context = e_context["context"]
        if context.type != ContextType.TEXT or context.content.strip() != "hello":
            return
        reply = Reply()
        reply.type = ReplyType.TEXT
        reply.content = self.greeting + ", " + context["session_id"]
        e_context["reply"] = reply
        e_context.action = EventAction.BREAK_PASS

    def get_help_text(self, **kwargs):
        return "send hello"
"""


def write_greeter(root, enabled, template=None, folder_config=None):
    folder = root / "greeter"
    folder.mkdir()
    (folder / "__init__.py").write_text("from .greeter import *\n", encoding="utf-8")
    body = textwrap.dedent(GREETER).replace("ENABLED", repr(enabled))
    (folder / "greeter.py").write_text(body, encoding="utf-8")
    (folder / "config.json.template").write_text(
        json.dumps(template or {"greeting": "你好"}), encoding="utf-8"
    )
    if folder_config is not None:
        (folder / "config.json").write_text(json.dumps(folder_config), encoding="utf-8")
    return folder


def write_state(root, entries):
    (root / "plugins.json").write_text(json.dumps({"plugins": entries}), encoding="utf-8")


def read_state(root):
    return json.loads((root / "plugins.json").read_text(encoding="utf-8"))["plugins"]


@pytest.fixture
def plugin_dir(tmp_path):
    yield tmp_path
    PluginManager.reset()
    config.plugin_config.clear()


def load(root):
    manager = PluginManager.reset(str(root))
    manager.load_plugins()
    assert manager.failed == {}
    return manager


def ask(manager, text, session="cust-1"):
    context = Context(ContextType.TEXT, text, {"session_id": session})
    e_context = EventContext(Event.ON_HANDLE_CONTEXT, {"channel": None, "context": context, "reply": Reply()})
    return manager.emit_event(e_context)


def test_star_import_gives_what_upstreams_gives():
    namespace: dict[str, object] = {}
    exec("from plugins import *", namespace)
    assert set(namespace) >= UPSTREAM_STAR_NAMES
    assert set(plugins.__all__) == UPSTREAM_STAR_NAMES
    assert namespace["logger"] is logging.getLogger("log")
    assert namespace["os"] is os and namespace["json"] is json
    assert namespace["conf"] is config.conf and namespace["pconf"] is config.pconf
    assert namespace["plugin_config"] is config.plugin_config
    assert namespace["write_plugin_config"] is config.write_plugin_config
    assert namespace["instance"] is PluginManager()


def test_instance_follows_the_current_manager(plugin_dir):
    manager = PluginManager.reset(str(plugin_dir))
    assert plugins.instance is manager


def test_enabled_plugin_loads_and_its_handler_replies(plugin_dir):
    folder = write_greeter(plugin_dir, enabled=True)
    manager = load(plugin_dir)
    assert list(manager.instances) == ["GREETER"]
    module = manager.loaded[str(folder)]
    assert module.STAR_SEEN == {
        "logger": "log",
        "os": "greeter.py",
        "json": '{"a": 1}',
        "conf": "$",
        "pconf": None,
        "manager": True,
    }
    cls = manager.plugins["GREETER"]
    assert (cls.name, cls.priority, cls.desc, cls.version, cls.author) == (
        "Greeter", 7, "answers hello", "0.2", "tests"
    )  # fmt: skip
    assert cls.hidden is True and cls.namecn == "Greeter" and cls.path == str(folder)
    assert manager.instances["GREETER"].get_help_text(verbose=True) == "send hello"

    e_context = ask(manager, "hello")
    assert e_context.is_pass()
    assert (e_context["reply"].type, e_context["reply"].content) == (ReplyType.TEXT, "你好, cust-1")
    assert e_context["breaked_by"] == "GREETER"  # as upstream's emit_event records it

    other = ask(manager, "something else")
    assert other.action == EventAction.CONTINUE and other["reply"].content is None
    assert "breaked_by" not in other
    assert read_state(plugin_dir) == {"Greeter": {"enabled": True, "priority": 7}}


def test_enabled_false_stays_off_and_is_written_off(plugin_dir):
    write_greeter(plugin_dir, enabled=False)
    manager = load(plugin_dir)
    assert "GREETER" in manager.plugins and manager.instances == {}
    assert manager.plugins["GREETER"].enabled is False
    e_context = ask(manager, "hello")
    assert e_context.action == EventAction.CONTINUE and e_context["reply"].content is None
    assert read_state(plugin_dir) == {"Greeter": {"enabled": False, "priority": 7}}
    # The next start reads that entry: still off.
    assert load(plugin_dir).instances == {}


@pytest.mark.parametrize(
    ("decorator", "entry", "active"),
    [
        (False, {"enabled": True, "priority": 7}, True),  # plugins.json turns a default-off plugin on
        (True, {"enabled": False, "priority": 7}, False),  # ... and a default-on plugin off
        (False, {"priority": 7}, False),  # an entry without "enabled" keeps the decorator's value
        (True, {"priority": 7}, True),
    ],
)
def test_plugins_json_entry_wins_over_the_decorator(plugin_dir, decorator, entry, active):
    write_greeter(plugin_dir, enabled=decorator)
    write_state(plugin_dir, {"Greeter": entry})
    manager = load(plugin_dir)
    assert ("GREETER" in manager.instances) is active
    assert ask(manager, "hello").is_pass() is active
    assert read_state(plugin_dir) == {"Greeter": entry}  # a known plugin's entry is not rewritten


def test_enable_at_runtime_like_godcmd_enablep(plugin_dir):
    write_greeter(plugin_dir, enabled=False)
    manager = load(plugin_dir)
    assert manager.enable_plugin("greeter") == (True, "插件已开启")
    assert ask(manager, "hello")["reply"].content == "你好, cust-1"
    assert read_state(plugin_dir)["Greeter"]["enabled"] is True
    assert manager.disable_plugin("GREETER") is True
    assert not ask(manager, "hello").is_pass()
    assert read_state(plugin_dir)["Greeter"]["enabled"] is False


def test_register_defaults_match_upstream(plugin_dir):
    manager = PluginManager.reset(str(plugin_dir))

    @plugins.register(name="Bare")
    class Bare(plugins.Plugin):
        pass

    assert Bare is not None and manager.plugins["BARE"] is Bare
    assert (Bare.priority, Bare.version, Bare.namecn, Bare.hidden, Bare.enabled) == (
        0,
        "1.0",
        "Bare",
        False,
        True,
    )
    assert (Bare.desc, Bare.author) == (None, None)
    assert Bare().get_help_text() == "暂无帮助信息"


def test_load_config_and_save_config_like_upstream(plugin_dir):
    folder = write_greeter(plugin_dir, enabled=True, folder_config={"greeting": "早上好"})
    manager = load(plugin_dir)
    greeter = manager.instances["GREETER"]
    assert greeter.config == {"greeting": "早上好"}  # the folder's config.json, before the template
    assert config.pconf("Greeter") == {"greeting": "早上好"}
    greeter.save_config({"greeting": "晚上好"})
    assert json.loads((folder / "config.json").read_text(encoding="utf-8")) == {"greeting": "晚上好"}
    assert config.pconf("greeter") == {"greeting": "晚上好"}
    assert not (plugin_dir / "config.json").exists()  # the global file is updated, never created


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

    def send(self, reply, context):
        self.sent.append((reply.type, reply.content, context["receiver"]))


class _Bot:
    def __init__(self):
        self.lock = threading.Lock()
        self.queries = []

    def reply(self, query, context):
        with self.lock:
            self.queries.append(query)
        return Reply(ReplyType.TEXT, f"bot:{query}")


@pytest.fixture
def host(plugin_dir):
    saved = config.config
    path = plugin_dir.parent / "host-config.json"
    path.write_text("{}", encoding="utf-8")
    config.load_config(str(path), environ={})
    Bridge._drop_instance()
    yield plugin_dir
    Bridge._drop_instance()
    config.config = saved


def test_through_the_channel_the_plugin_answers_instead_of_the_bot(host):
    write_greeter(host, enabled=True)
    load(host)
    bot = _Bot()
    Bridge().set_bot(bot)
    channel = _Channel()
    for text in ("hello", "price?"):
        channel._handle(channel._compose_context(ContextType.TEXT, text, msg=_Msg("cust-9", text)))
    assert channel.sent == [
        (ReplyType.TEXT, "你好, cust-9", "cust-9"),
        (ReplyType.TEXT, "bot:price?", "cust-9"),
    ]
    assert bot.queries == ["price?"]
