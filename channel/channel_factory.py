"""A registry of channels: ``create_channel(channel_type)`` builds one and sets ``channel_type``."""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from channel.channel import Channel
from common import const

logger = logging.getLogger(__name__)

# name -> zero-argument callable returning the channel class (imported only when chosen).
_LOADERS: dict[str, Callable[[], Callable[[], Any]]] = {}
_lock = threading.Lock()


class UnknownChannelError(ValueError):
    """The configured channel_type names no registered channel."""


def register_channel(name: str, loader: Callable[[], Callable[[], Any]], *, replace: bool = False) -> None:
    """Register ``loader`` (returns the channel class) under ``name``."""
    with _lock:
        if name in _LOADERS and not replace:
            raise ValueError(f"channel type {name!r} is already registered")
        _LOADERS[name] = loader


def unregister_channel(name: str) -> None:
    with _lock:
        _LOADERS.pop(name, None)


def known_channel_types() -> list[str]:
    with _lock:
        return sorted(_LOADERS)


def _load_dotted(spec: str) -> Callable[[], Any]:
    module_name, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownChannelError(f"channel_type {spec!r}: cannot import it ({exc})") from None


def create_channel(channel_type: str) -> Channel:
    """Build the channel named ``channel_type``.

    Besides the registered names, ``"package.module:ClassName"`` loads a channel class from code
    the deployer provides. Raises UnknownChannelError (a ValueError) listing the known types.
    """
    name = channel_type.strip()
    with _lock:
        loader = _LOADERS.get(name)
    if loader is not None:
        factory = loader()
    elif ":" in name:
        factory = _load_dotted(name)
    else:
        known = ", ".join(known_channel_types())
        raise UnknownChannelError(f"unknown channel_type {name!r}; known types: {known}")
    channel: Channel = factory()
    channel.channel_type = name
    return channel


def _load_wechatcom_kf() -> Callable[[], Any]:
    from channel.wechatcom_kf.wechatcom_kf_channel import WechatComKfChannel

    return WechatComKfChannel


def _load_wechat_kf() -> Callable[[], Any]:
    from channel.wechat_kf.wechat_kf_channel import WechatKfChannel

    return WechatKfChannel


def _load_terminal() -> Callable[[], Any]:
    from channel.terminal_channel import TerminalChannel

    return TerminalChannel


register_channel(const.WECHATCOM_KF, _load_wechatcom_kf)
register_channel(const.WECHAT_KF, _load_wechat_kf)  # upstream's later name: its keys, port and cursor file
register_channel(const.TERMINAL, _load_terminal)
