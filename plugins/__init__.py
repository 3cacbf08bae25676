"""CoW-compatible plugins: ``import plugins`` then ``@plugins.register(name=..., desire_priority=...)``."""

from typing import Any

from plugins.event import Event, EventAction, EventContext
from plugins.plugin import Plugin
from plugins.plugin_manager import PluginManager

__all__ = ["Event", "EventAction", "EventContext", "Plugin", "PluginManager", "register"]


def register(name: str, desire_priority: int = 0, **kwargs: Any) -> Any:
    """Class decorator registering a Plugin subclass with the current PluginManager."""
    return PluginManager().register(name, desire_priority, **kwargs)
