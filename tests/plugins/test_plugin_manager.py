import json
import logging
import textwrap

import pytest

import config
from bridge.bridge import Bridge
from bridge.context import ContextType
from bridge.reply import Reply, ReplyType
from channel.chat_channel import ChatChannel
from channel.chat_message import ChatMessage
from plugins import Event, EventAction, EventContext, Plugin, PluginManager, plugin_manager
from plugins.plugin_manager import PLUGIN_FAILURE_TEXT

PLUGIN = """
import plugins
from plugins import *


@plugins.register(
    name="{name}", desire_priority={priority}, desc="d", version="0.1", author="t", hidden={hidden}
)
class P(Plugin):
    def __init__(self):
        super().__init__()
        self.conf = self.load_config()
        self.handlers[Event.ON_HANDLE_CONTEXT] = self.on_handle

    def on_handle(self, e_context):
        e_context["trace"].append("{name}")
        {action}
"""


def make_plugin(root, name, priority=0, action="pass", hidden=False, config_json=None):
    folder = root / name.lower()
    folder.mkdir()
    body = PLUGIN.format(name=name, priority=priority, action=action, hidden=hidden)
    (folder / "__init__.py").write_text(textwrap.dedent(body), encoding="utf-8")
    if config_json is not None:
        (folder / "config.json").write_text(json.dumps(config_json), encoding="utf-8")


@pytest.fixture
def plugin_dir(tmp_path):
    yield tmp_path
    PluginManager.reset()
    config.plugin_config.clear()


def emit(manager):
    e_context = EventContext(Event.ON_HANDLE_CONTEXT, {"trace": [], "context": None, "reply": None})
    return manager.emit_event(e_context)


def test_star_import_exports_cow_names():
    namespace: dict[str, object] = {}
    exec("from plugins import *", namespace)
    for name in ("register", "Plugin", "Event", "EventAction", "EventContext", "PluginManager"):
        assert name in namespace


def test_event_and_action_values_match_cow():
    assert [(e.name, e.value) for e in Event] == [
        ("ON_RECEIVE_MESSAGE", 1), ("ON_HANDLE_CONTEXT", 2), ("ON_DECORATE_REPLY", 3), ("ON_SEND_REPLY", 4),
    ]  # fmt: skip
    assert [(a.name, a.value) for a in EventAction] == [("CONTINUE", 1), ("BREAK", 2), ("BREAK_PASS", 3)]


def test_plugins_run_by_priority_and_state_is_written(plugin_dir):
    make_plugin(plugin_dir, "Low", priority=1)
    make_plugin(plugin_dir, "High", priority=10, hidden=True)
    make_plugin(plugin_dir, "Mid", priority=5)
    manager = PluginManager.reset(str(plugin_dir))
    manager.load_plugins()
    assert emit(manager)["trace"] == ["High", "Mid", "Low"]
    assert manager.plugins["HIGH"].hidden is True and manager.plugins["HIGH"].version == "0.1"
    state = json.loads((plugin_dir / "plugins.json").read_text(encoding="utf-8"))
    assert list(state["plugins"]) == ["High", "Mid", "Low"]
    assert state["plugins"]["Mid"] == {"enabled": True, "priority": 5}
    assert not [p for p in plugin_dir.iterdir() if p.name.startswith(".tmp-")]  # no temp file left


def test_a_plugins_folder_the_service_cannot_write_still_runs_its_plugins(plugin_dir, caplog, monkeypatch):
    """A root-owned code tree (docs/operations.md): the write is refused; as root here, nothing refuses
    it, so the refusal is injected where the file is written."""
    make_plugin(plugin_dir, "Low", priority=1)
    make_plugin(plugin_dir, "High", priority=10)

    def refused(path, text, mode=0o600):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(plugin_manager, "atomic_write_text", refused)
    manager = PluginManager.reset(str(plugin_dir))
    with caplog.at_level(logging.WARNING):
        manager.load_plugins()
    assert emit(manager)["trace"] == ["High", "Low"]
    assert [
        r.getMessage() for r in caplog.records if "cannot be written (Permission denied)" in r.getMessage()
    ]


def test_plugins_json_overrides_priority_and_enabled(plugin_dir):
    make_plugin(plugin_dir, "A", priority=1)
    make_plugin(plugin_dir, "B", priority=2)
    make_plugin(plugin_dir, "C", priority=3)
    state = {"plugins": {"A": {"enabled": True, "priority": 99}, "C": {"enabled": False, "priority": 3}}}
    (plugin_dir / "plugins.json").write_text(json.dumps(state), encoding="utf-8")
    manager = PluginManager.reset(str(plugin_dir))
    manager.load_plugins()
    assert emit(manager)["trace"] == ["A", "B"]
    manager.set_plugin_priority("b", 100)
    assert emit(manager)["trace"] == ["B", "A"]
    saved = json.loads((plugin_dir / "plugins.json").read_text(encoding="utf-8"))
    assert saved["plugins"]["B"]["priority"] == 100
    manager.disable_plugin("A")
    assert emit(manager)["trace"] == ["B"]
    assert manager.enable_plugin("C") == (True, "插件已开启")
    assert emit(manager)["trace"] == ["B", "C"]


@pytest.mark.parametrize(
    ("action", "trace", "is_pass"),
    [
        ("e_context.action = EventAction.BREAK", ["First"], False),
        ("e_context.action = EventAction.BREAK_PASS", ["First"], True),
        ("pass", ["First", "Second"], False),
    ],
)
def test_break_and_break_pass_stop_later_plugins(plugin_dir, action, trace, is_pass):
    make_plugin(plugin_dir, "First", priority=2, action=action)
    make_plugin(plugin_dir, "Second", priority=1)
    manager = PluginManager.reset(str(plugin_dir))
    manager.load_plugins()
    e_context = emit(manager)
    assert e_context["trace"] == trace
    assert e_context.is_pass() is is_pass
    assert e_context.is_break() is (action != "pass")


def test_broken_plugin_is_reported_once_and_skipped(plugin_dir, caplog):
    make_plugin(plugin_dir, "Good", priority=1)
    broken = plugin_dir / "broken"
    broken.mkdir()
    (broken / "__init__.py").write_text("import plugins\nimport no_such_module_xyz\n", encoding="utf-8")
    manager = PluginManager.reset(str(plugin_dir))
    with caplog.at_level(logging.INFO, logger="plugins.plugin_manager"):
        manager.load_plugins()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "broken" in errors[0].getMessage() and "no_such_module_xyz" in errors[0].getMessage()
    assert errors[0].exc_info is None  # one line, no traceback
    assert emit(manager)["trace"] == ["Good"]
    assert "broken" in manager.failed


def test_a_plugin_raising_in_a_handler_ends_the_event_with_an_apology(plugin_dir, caplog):
    make_plugin(plugin_dir, "Before", priority=3)
    make_plugin(plugin_dir, "Raiser", priority=2, action="raise RuntimeError('x')")
    make_plugin(plugin_dir, "After", priority=1)
    manager = PluginManager.reset(str(plugin_dir))
    manager.load_plugins()
    with caplog.at_level(logging.ERROR, logger="plugins.plugin_manager"):
        e_context = emit(manager)
    assert e_context["trace"] == ["Before", "Raiser"]  # the plugins after it do not run
    assert e_context.action == EventAction.BREAK_PASS  # and neither does the bot
    assert (e_context["reply"].type, e_context["reply"].content) == (ReplyType.ERROR, PLUGIN_FAILURE_TEXT)
    assert e_context["failed_by"] == "RAISER"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.exc_info is not None for r in errors] == [True]  # logged once, with its traceback


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
        self.sent.append((reply.type, reply.content))


class _Bot:
    def __init__(self):
        self.queries = []

    def reply(self, query, context):
        self.queries.append(query)
        return Reply(ReplyType.TEXT, f"bot:{query}")


@pytest.mark.parametrize(
    ("event", "asked", "sent"),
    [
        (Event.ON_RECEIVE_MESSAGE, [], []),
        (Event.ON_HANDLE_CONTEXT, [], [(ReplyType.ERROR, f"[ERROR]\n{PLUGIN_FAILURE_TEXT}")]),
        (Event.ON_DECORATE_REPLY, ["#cmd"], [(ReplyType.ERROR, f"[ERROR]\n{PLUGIN_FAILURE_TEXT}")]),
        (Event.ON_SEND_REPLY, ["#cmd"], [(ReplyType.ERROR, PLUGIN_FAILURE_TEXT)]),
    ],
)
def test_through_the_channel_a_raising_plugin_lets_nothing_unchecked_through(plugin_dir, event, asked, sent):
    saved = config.config
    path = plugin_dir / "host-config.json"
    path.write_text("{}", encoding="utf-8")
    config.load_config(str(path), environ={})
    Bridge._drop_instance()
    try:
        manager = PluginManager.reset(str(plugin_dir))

        def boom(e_context):
            raise KeyError("no_such_name")

        class Raiser(Plugin):
            def __init__(self):
                super().__init__()
                self.handlers = {event: boom}

        manager.register(name="Raiser", desire_priority=1)(Raiser)
        manager.activate_plugins()
        bot = _Bot()
        Bridge().set_bot(bot)
        channel = _Channel()
        context = channel._compose_context(ContextType.TEXT, "#cmd", msg=_Msg("cust", "#cmd"))
        if context is not None:
            channel._handle(context)
        assert (bot.queries, channel.sent) == (asked, sent)
    finally:
        Bridge._drop_instance()
        config.config = saved


def test_plugin_config_global_file_wins_over_folder_file(plugin_dir):
    make_plugin(plugin_dir, "Conf", config_json={"source": "folder"})
    make_plugin(plugin_dir, "Other", config_json={"source": "folder"})
    (plugin_dir / "config.json").write_text(json.dumps({"Conf": {"source": "global"}}), encoding="utf-8")
    manager = PluginManager.reset(str(plugin_dir))
    manager.load_plugins()
    confs = {name: vars(instance).get("conf") for name, instance in manager.instances.items()}
    assert confs == {"CONF": {"source": "global"}, "OTHER": {"source": "folder"}}
    assert config.pconf("other") == {"source": "folder"}


def test_empty_plugin_folder_writes_nothing(plugin_dir):
    manager = PluginManager.reset(str(plugin_dir))
    manager.load_plugins()
    assert list(plugin_dir.iterdir()) == []
