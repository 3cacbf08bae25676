"""CoW-compatible plugin manager: scan a folder, register, order by priority, emit events."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from bridge.reply import Reply, ReplyType
from common.utils import atomic_write_text
from config import write_plugin_config
from plugins.event import Event, EventAction, EventContext
from plugins.plugin import Plugin

logger = logging.getLogger(__name__)

DEFAULT_PLUGINS_DIR = os.path.dirname(os.path.abspath(__file__))
# What the customer gets instead of a reply a plugin failed to produce, decorate or send.
PLUGIN_FAILURE_TEXT = "抱歉，暂时无法处理您的消息，请稍后再试。"


class PluginManager:
    """One per process (``PluginManager()`` returns it); ``reset()`` replaces it (tests)."""

    _instance: PluginManager | None = None
    _instance_lock = threading.Lock()

    def __new__(cls) -> PluginManager:
        with cls._instance_lock:
            if cls._instance is None:
                instance = super().__new__(cls)
                instance._setup(DEFAULT_PLUGINS_DIR)
                cls._instance = instance
            return cls._instance

    @classmethod
    def reset(cls, plugins_dir: str | None = None) -> PluginManager:
        """Start over with a fresh manager scanning ``plugins_dir`` (default: this package's folder)."""
        with cls._instance_lock:
            instance = super().__new__(cls)
            instance._setup(plugins_dir or DEFAULT_PLUGINS_DIR)
            cls._instance = instance
            return instance

    def _setup(self, plugins_dir: str) -> None:
        self.plugins_dir = os.path.abspath(plugins_dir)
        self.plugins: dict[str, type[Plugin]] = {}  # upper-case name -> class
        self.listening_plugins: dict[Event, list[str]] = {}
        self.instances: dict[str, Plugin] = {}
        self.pconf: dict[str, Any] = {"plugins": {}}
        self.current_plugin_path: str | None = None
        self.loaded: dict[str, ModuleType] = {}
        self.failed: dict[str, str] = {}  # plugin folder name -> why it was skipped

    @property
    def state_path(self) -> str:
        return os.path.join(self.plugins_dir, "plugins.json")

    @property
    def global_config_path(self) -> str:
        return os.path.join(self.plugins_dir, "config.json")

    def register(self, name: str, desire_priority: int = 0, **kwargs: Any) -> Callable[[type], type]:
        def wrapper(plugincls: type) -> type:
            plugincls.name = name  # type: ignore[attr-defined]
            plugincls.priority = desire_priority  # type: ignore[attr-defined]
            plugincls.desc = kwargs.get("desc")  # type: ignore[attr-defined]
            plugincls.author = kwargs.get("author")  # type: ignore[attr-defined]
            plugincls.path = self.current_plugin_path or ""  # type: ignore[attr-defined]
            # CoW's defaults: a missing (None) version, namecn or hidden becomes "1.0", the name, False.
            version = kwargs.get("version")
            plugincls.version = "1.0" if version is None else version  # type: ignore[attr-defined]
            namecn = kwargs.get("namecn")
            plugincls.namecn = name if namecn is None else namecn  # type: ignore[attr-defined]
            plugincls.hidden = bool(kwargs.get("hidden") or False)  # type: ignore[attr-defined]
            # CoW 2.0.8+: ``enabled`` (default True) is the state a plugin gets the first time it is seen;
            # once plugins.json has an entry for it, that entry decides (see scan_plugins).
            plugincls.enabled = bool(kwargs.get("enabled", True))  # type: ignore[attr-defined]
            self.plugins[name.upper()] = plugincls
            logger.info("plugin %s v%s registered", name, plugincls.version)  # type: ignore[attr-defined]
            return plugincls

        return wrapper

    # -- plugins.json (enabled / priority) and plugins/config.json ------------------------------------
    def load_config(self) -> dict[str, Any]:
        """Read plugins.json and the global plugin config; creates no file."""
        pconf: dict[str, Any] = {"plugins": {}}
        if os.path.exists(self.state_path):
            with open(self.state_path, encoding="utf-8") as fh:
                data = json.load(fh)
            if isinstance(data, dict) and isinstance(data.get("plugins"), dict):
                pconf = data
        self.pconf = pconf
        if os.path.exists(self.global_config_path):
            with open(self.global_config_path, encoding="utf-8") as fh:
                global_conf = json.load(fh)
            if isinstance(global_conf, dict):
                write_plugin_config(global_conf)
        return pconf

    def save_config(self) -> None:
        """Write plugins.json. A code tree the service user cannot write (root-owned, as docs/operations.md
        installs it) keeps the plugins running as registered; only the file is not updated."""
        entries = sorted(self.pconf["plugins"].items(), key=lambda kv: -int(kv[1].get("priority", 0)))
        self.pconf["plugins"] = dict(entries)
        text = json.dumps(self.pconf, indent=4, ensure_ascii=False)
        try:
            atomic_write_text(self.state_path, text, mode=0o644)
        except OSError as exc:
            logger.warning(
                "%s cannot be written (%s): plugins run as registered, changes to their order or "
                "enabled state are not kept; create the file or make its directory writable for this user",
                self.state_path,
                exc.strerror,
            )

    # -- discovery -------------------------------------------------------------------------------
    def _import(self, folder: str, path: str) -> ModuleType:
        init = os.path.join(path, "__init__.py")
        if self.plugins_dir == DEFAULT_PLUGINS_DIR:
            return importlib.import_module(f"plugins.{folder}")
        # A folder outside the package: a unique top-level name, so relative imports inside work.
        digest = hashlib.sha1(self.plugins_dir.encode()).hexdigest()[:8]
        module_name = f"_cow_plugin_{digest}_{folder}"
        spec = importlib.util.spec_from_file_location(module_name, init, submodule_search_locations=[path])
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {init}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        return module

    def _import_one(self, folder: str, path: str) -> None:
        self.current_plugin_path = path
        try:
            self.loaded[path] = self._import(folder, path)
        except Exception as exc:  # a broken plugin must not stop the others
            self.failed[folder] = f"{type(exc).__name__}: {exc}"
            for key in [k for k, cls in self.plugins.items() if cls.path == path]:
                del self.plugins[key]
            logger.error("plugin %s skipped: import failed: %s", folder, self.failed[folder])
        finally:
            self.current_plugin_path = None

    def scan_plugins(self) -> list[type[Plugin]]:
        """Import every ``<plugins_dir>/<name>/__init__.py`` not imported yet; returns new classes."""
        before = set(self.plugins.values())
        for folder in sorted(os.listdir(self.plugins_dir)):
            path = os.path.join(self.plugins_dir, folder)
            if folder.startswith(("_", ".")) or not os.path.isfile(os.path.join(path, "__init__.py")):
                continue
            if path not in self.loaded:
                self._import_one(folder, path)
        modified = False
        for plugincls in self.plugins.values():
            entry = self.pconf["plugins"].get(plugincls.name)
            if entry is None:
                modified = True
                self.pconf["plugins"][plugincls.name] = {
                    "enabled": plugincls.enabled,
                    "priority": plugincls.priority,
                }
            else:
                # plugins.json wins over the decorator's ``enabled`` (an entry without the key keeps it).
                plugincls.enabled = bool(entry.get("enabled", plugincls.enabled))
                plugincls.priority = int(entry.get("priority", plugincls.priority))
        if modified:
            self.save_config()
        return [cls for cls in self.plugins.values() if cls not in before]

    def refresh_order(self) -> None:
        for names in self.listening_plugins.values():
            names.sort(key=lambda name: self.plugins[name].priority, reverse=True)

    def activate_plugins(self) -> list[str]:
        """Instantiate enabled plugins not yet running; returns the names that failed."""
        failed: list[str] = []
        for name, plugincls in list(self.plugins.items()):
            if not plugincls.enabled or name in self.instances:
                continue
            try:
                instance = plugincls()
            except Exception as exc:
                logger.error(
                    "plugin %s disabled: init failed: %s: %s", plugincls.name, type(exc).__name__, exc
                )
                plugincls.enabled = False
                failed.append(name)
                continue
            self.instances[name] = instance
            for event in instance.handlers:
                self.listening_plugins.setdefault(event, []).append(name)
        self.refresh_order()
        return failed

    def load_plugins(self) -> None:
        self.load_config()
        self.scan_plugins()
        for name in self.pconf["plugins"]:
            if name.upper() not in self.plugins:
                logger.warning("plugin %s is listed in plugins.json but was not found", name)
        self.activate_plugins()
        logger.info("plugins active: %s", ", ".join(self.plugins[n].name for n in self.instances) or "none")

    # -- events ----------------------------------------------------------------------------------
    def emit_event(self, e_context: EventContext, *args: Any, **kwargs: Any) -> EventContext:
        """Call each enabled listener, highest priority first, until one sets BREAK or BREAK_PASS.

        A listener that raises ends the event (see ``_fail_closed``): upstream CoW lets the exception
        escape, so the customer's turn ends without a reply; here it is logged and the turn ends the
        same way, with a short apology where one can be sent.
        """
        for name in list(self.listening_plugins.get(e_context.event, ())):
            if e_context.action != EventAction.CONTINUE:
                break
            plugincls = self.plugins.get(name)
            instance = self.instances.get(name)
            if plugincls is None or instance is None or not plugincls.enabled:
                continue
            logger.debug("plugin %s handles %s", plugincls.name, e_context.event.name)
            try:
                instance.handlers[e_context.event](e_context, *args, **kwargs)
            except Exception:
                logger.exception("plugin %s failed on %s", plugincls.name, e_context.event.name)
                _fail_closed(e_context, name)
                break
            if e_context.is_break():
                e_context["breaked_by"] = name  # as CoW: the (upper-case) name of the plugin that stopped it
                logger.debug("plugin %s broke %s", plugincls.name, e_context.event.name)
        return e_context

    # -- management (godcmd-style) ---------------------------------------------------------------
    def set_plugin_priority(self, name: str, priority: int) -> bool:
        plugincls = self.plugins.get(name.upper())
        if plugincls is None:
            return False
        plugincls.priority = priority
        self.pconf["plugins"].setdefault(plugincls.name, {"enabled": plugincls.enabled})["priority"] = (
            priority
        )
        self.save_config()
        self.refresh_order()
        return True

    def enable_plugin(self, name: str) -> tuple[bool, str]:
        plugincls = self.plugins.get(name.upper())
        if plugincls is None:
            return False, "插件不存在"
        if not plugincls.enabled:
            plugincls.enabled = True
            self._store_enabled(plugincls)
            if name.upper() in self.activate_plugins():
                return False, "插件开启失败"
        return True, "插件已开启"

    def disable_plugin(self, name: str) -> bool:
        plugincls = self.plugins.get(name.upper())
        if plugincls is None:
            return False
        if plugincls.enabled:
            plugincls.enabled = False
            self._store_enabled(plugincls)
        return True

    def _store_enabled(self, plugincls: type[Plugin]) -> None:
        entry = self.pconf["plugins"].setdefault(plugincls.name, {"priority": plugincls.priority})
        entry["enabled"] = plugincls.enabled
        self.save_config()

    def reload_plugin(self, name: str) -> bool:
        key = name.upper()
        if key not in self.instances:
            return False
        for names in self.listening_plugins.values():
            if key in names:
                names.remove(key)
        del self.instances[key]
        self.activate_plugins()
        return True

    def list_plugins(self) -> dict[str, type[Plugin]]:
        return self.plugins


def _fail_closed(e_context: EventContext, name: str) -> None:
    """End an event whose plugin raised, so that what it was working on goes no further unchecked.

    The plugin may have been a command (godcmd's ``#reset``, ``#auth <password>``), a filter or a
    gate: going on as if it had not been there would send the command to the model as a question (and
    into the customer's memory), or a reply it should have vetted to the customer. So:

    - ON_RECEIVE_MESSAGE: the message is ignored (the customer gets nothing);
    - ON_HANDLE_CONTEXT: the model is not asked; the customer gets ``PLUGIN_FAILURE_TEXT``;
    - ON_DECORATE_REPLY, ON_SEND_REPLY: ``PLUGIN_FAILURE_TEXT`` is sent instead of the reply.

    Later plugins do not run for this event; ``e_context["failed_by"]`` (like ``"breaked_by"``) is the
    upper-case name of the plugin that raised.
    """
    e_context["failed_by"] = name
    if e_context.event == Event.ON_RECEIVE_MESSAGE:
        e_context["context"] = None
        e_context.action = EventAction.BREAK_PASS
        return
    e_context["reply"] = Reply(ReplyType.ERROR, PLUGIN_FAILURE_TEXT)
    # BREAK_PASS skips the bot; after the bot, BREAK keeps the channel's own decoration and sending.
    handled = e_context.event == Event.ON_HANDLE_CONTEXT
    e_context.action = EventAction.BREAK_PASS if handled else EventAction.BREAK
