"""CoW-compatible plugins: ``import plugins`` then ``@plugins.register(name=..., desire_priority=...)``."""

import json
import os
from enum import Enum
from typing import Any

from common.log import logger
from config import conf, pconf, plugin_config, write_plugin_config
from plugins import event, plugin, plugin_manager
from plugins.event import Event, EventAction, EventContext
from plugins.plugin import Plugin
from plugins.plugin_manager import PluginManager

# Upstream CoW's plugins/__init__.py does ``from .event import *`` and ``from .plugin import *`` with no
# ``__all__``, so its ``from plugins import *`` also hands out everything those modules import. Upstream's
# bundled plugins (godcmd, hello, linkai, tool, ...) and third-party ones rely on that: they use ``os``,
# ``json``, ``logger``, ``pconf``, ``write_plugin_config``, ``PluginManager`` ... without importing them.
# These re-exports are that same set, listed explicitly; ``instance`` is upstream's ``PluginManager()``.
__all__ = [
    "Enum",
    "Event",
    "EventAction",
    "EventContext",
    "Plugin",
    "PluginManager",
    "conf",
    "event",
    "instance",
    "json",
    "logger",
    "os",
    "pconf",
    "plugin",
    "plugin_config",
    "plugin_manager",
    "register",
    "write_plugin_config",
]


def register(name: str, desire_priority: int = 0, **kwargs: Any) -> Any:
    """Class decorator registering a Plugin subclass with the current PluginManager.

    Keyword arguments as in CoW: ``desc``, ``version`` ("1.0"), ``author``, ``namecn`` (the name),
    ``hidden`` (False) and ``enabled`` (True: the state written to plugins.json the first time the
    plugin is seen; an existing plugins.json entry wins).
    """
    return PluginManager().register(name, desire_priority, **kwargs)


def __getattr__(name: str) -> Any:
    # ``plugins.instance`` is the current manager (``PluginManager.reset`` replaces it in tests).
    if name == "instance":
        return PluginManager()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
