"""Base class of CoW plugins."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any

from common.utils import atomic_write_text
from config import pconf, plugin_config

logger = logging.getLogger(__name__)


class Plugin:
    # Set by ``@plugins.register``.
    name: str = ""
    priority: int = 0
    desc: str | None = None
    author: str | None = None
    version: str = "1.0"
    namecn: str = ""
    hidden: bool = False
    enabled: bool = True
    path: str = ""

    def __init__(self) -> None:
        self.handlers: dict[Any, Callable[..., Any]] = {}

    def _config_path(self) -> str:
        return os.path.join(self.path, "config.json")

    def load_config(self) -> dict[str, Any] | None:
        """plugins/config.json's entry for this plugin, else the plugin folder's config.json."""
        plugin_conf = pconf(self.name)
        if not plugin_conf:
            path = self._config_path()
            if self.path and os.path.exists(path):
                with open(path, encoding="utf-8") as fh:
                    plugin_conf = json.load(fh)
                plugin_config[self.name.lower()] = plugin_conf
        logger.debug("loaded config of plugin %s", self.name)
        return plugin_conf if isinstance(plugin_conf, dict) else None

    def save_config(self, config: dict[str, Any]) -> None:
        """Update the in-memory config and the files that already hold it (never creates one)."""
        plugin_config[self.name.lower()] = config
        try:
            from plugins.plugin_manager import PluginManager

            global_path = PluginManager().global_config_path
            if os.path.exists(global_path):
                atomic_write_text(global_path, json.dumps(plugin_config, indent=4, ensure_ascii=False))
            path = self._config_path()
            if self.path and os.path.exists(path):
                atomic_write_text(path, json.dumps(config, indent=4, ensure_ascii=False))
        except OSError as exc:
            logger.warning("saving config of plugin %s failed: %s", self.name, exc)

    def get_help_text(self, **kwargs: Any) -> str:
        return "暂无帮助信息"

    def reload(self) -> None:
        """Called when the plugin is reloaded; nothing to do by default."""
