"""The channel's settings for a fake host pointed at the emulator, in config.json or in the
environment, and ``launch`` (tree + process + wait for the callback port + point the emulator at it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sandbox.emulator import WeComEmulator
from sandbox.harness import LOOPBACK, free_port

from .process import HostProcess
from .tree import make_host

# Small windows keep the scenarios fast; one answer per message.
FAST_SETTINGS: dict[str, Any] = {
    "wechatcom_kf_merge_window_seconds": 0.3,
    "wechatcom_kf_request_timeout": 5.0,
    "wechatcom_kf_flood_max_messages": 0,
}
# What a KF deployment of CoW must have in config.json (every key is a host key).
HOST_KEYS: dict[str, Any] = {"single_chat_prefix": [""]}
START_TIMEOUT = 30.0


def kf_settings(emu: WeComEmulator, state_dir: Path, port: int) -> dict[str, Any]:
    """The ``wechatcom_kf_*`` settings of a channel on ``port`` for ``emu`` (no ``channel_type``)."""
    values = {k: v for k, v in emu.channel_config().items() if k != "channel_type"}
    return {
        **values,
        "wechatcom_kf_host": LOOPBACK,
        "wechatcom_kf_port": port,
        "wechatcom_kf_cursor_dir": str(state_dir),
        **FAST_SETTINGS,
    }


def env_name(key: str) -> str:
    from channel.wechatcom_kf.settings import KF_SETTINGS

    for spec in KF_SETTINGS:
        if spec.name == key and spec.env:
            return spec.env
    return key.upper()


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def as_environ(settings: dict[str, Any]) -> dict[str, str]:
    """The same settings as the channel's environment variables (``WECHATCOM_CORP_ID`` ...)."""
    return {env_name(key): _env_text(value) for key, value in settings.items()}


def launch(
    emu: WeComEmulator,
    directory: Path,
    version: str,
    *,
    bot: dict[str, Any] | None = None,
    in_env: bool | None = None,
    config: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    channel_type: str = "wechatcom_kf",
    wait: bool = True,
) -> HostProcess:
    """Start a fake CoW ``version`` serving the channel for ``emu``; with ``wait``, once its callback
    port answers, ``emu.callback_url`` points at it.

    The channel's settings go to the environment when ``in_env`` (default: on CoW 1.x, whose config.json
    cannot hold a key it does not know), else to config.json. ``settings`` override them (a key mapped
    to None is left out), ``config`` adds host keys (2.x: the web console is on, as upstream's default,
    on a free ``web_port`` of its own unless ``config`` says otherwise).
    """
    port = free_port()
    values = {**kf_settings(emu, directory / "state", port), **(settings or {})}
    values = {k: v for k, v in values.items() if v is not None}
    if in_env is None:
        in_env = version.startswith("1.")
    host_config: dict[str, Any] = {"channel_type": channel_type, **HOST_KEYS}
    if not version.startswith("1."):
        host_config["web_port"] = free_port()
    host_config.update(config or {})
    if not in_env:
        host_config.update(values)
    tree = make_host(directory, version, host_config, bot=bot)
    port = int(values.get("wechatcom_kf_port", values.get("wechat_kf_port", port)))
    host = HostProcess(tree, as_environ(values) if in_env else {}, port=port).start()
    if wait:
        try:
            host.wait_port(START_TIMEOUT)
        except BaseException:
            host.stop()
            raise
        emu.callback_url = host.callback_url
    return host
