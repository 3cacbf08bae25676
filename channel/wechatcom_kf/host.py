"""What the channel needs to know about the host it runs in: this project's runtime or an upstream CoW.

Everything version-specific lives here, so the rest of the channel reads settings and logs the same
way everywhere (``../shared/cow-contract.md``):
- ``conf().get`` raises on CoW 1.x (≤ 1.7.6) for keys missing from its ``available_setting``:
  ``safe_get`` turns that into "not set";
- CoW 2.x starts a web console on ``web_port`` (9899, all interfaces) unless ``web_console`` is false:
  ``web_console_port`` says which port is taken;
- CoW's logger ``log`` does not propagate and the root logger has no handler, so the channel's own
  loggers would print nothing: ``join_host_log`` sends them to the host's handlers;
- CoW runs turns on 8 threads polled every 0.2 s: ``runs_in_this_runtime`` tells the channel to bring
  its own workers there.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Protocol

CHANNEL_LOGGER = "channel.wechatcom_kf"
HOST_LOGGER = "log"  # common.log.logger in every CoW version
DEFAULT_WEB_PORT = 9899


class HostConfig(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...


_MISSING = object()


def safe_get(config: HostConfig, key: str, default: Any = None) -> Any:
    """``config.get(key, default)``; the default when the host refuses the key (CoW 1.x raises)."""
    try:
        return config.get(key, default)
    except Exception:  # CoW 1.x: Exception("key ... not in available_setting")
        return default


def runs_in_this_runtime(config: HostConfig) -> bool:
    """True in this project's runtime (its Config applies the channel's environment variables)."""
    return bool(getattr(config, "applies_environment", False))


def web_console_port(config: HostConfig) -> int | None:
    """The port of the host's web console when one starts (CoW 2.x), else None."""
    if runs_in_this_runtime(config) or "web_console" not in _host_setting_names():
        return None
    if not safe_get(config, "web_console", True):
        return None
    try:
        return int(safe_get(config, "web_port", DEFAULT_WEB_PORT) or DEFAULT_WEB_PORT)
    except (TypeError, ValueError):
        return DEFAULT_WEB_PORT


def _host_setting_names() -> set[str]:
    """The keys the host's config module declares (``available_setting``), empty when it has none."""
    module = sys.modules.get("config")
    table = getattr(module, "available_setting", None)
    return set(table) if isinstance(table, dict) else set()


def join_host_log(config: HostConfig) -> bool:
    """In a CoW host, send the channel's log records to the host's ``log`` handlers (once)."""
    if runs_in_this_runtime(config):
        return False
    host = logging.getLogger(HOST_LOGGER)
    ours = logging.getLogger(CHANNEL_LOGGER)
    if not host.handlers or ours.handlers:
        return False
    for handler in host.handlers:
        ours.addHandler(handler)
    ours.setLevel(host.level or logging.INFO)
    ours.propagate = False
    return True
