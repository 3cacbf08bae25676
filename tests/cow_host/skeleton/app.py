"""CoW's ``app.py`` in miniature: load the config, create the channels of ``channel_type`` (2.x: plus
the web console unless ``web_console`` is false, started first), run each ``startup()`` in a daemon
thread, sleep until SIGTERM/SIGINT (upstream exits without stopping the channels).

A channel that fails to construct: CowAgent 2.1 logs it and skips it; older versions log
"App startup failed!" and the process ends.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

import host_profile as profile

from channel import channel_factory
from common.log import logger
from config import conf, load_config


def channel_names() -> list[str]:
    raw = conf().get("channel_type", profile.DEFAULT_CHANNEL_TYPE)
    if profile.RELEASE < (2, 0):
        return [str(raw)]
    items = raw if isinstance(raw, list) else str(raw).split(",")
    names = [str(item).strip() for item in items if str(item).strip()] or ["web"]
    if profile.WEB_CONSOLE and conf().get("web_console", True) and "web" not in names:
        names.append("web")
    return names


def create_channels(names: list[str]) -> list[tuple[str, Any]]:
    created: list[tuple[str, Any]] = []
    for name in names:
        if not profile.SKIP_BROKEN_CHANNEL:
            created.append((name, channel_factory.create_channel(name)))
            continue
        try:
            created.append((name, channel_factory.create_channel(name)))
        except Exception as e:
            logger.error(f"[ChannelManager] Failed to create channel '{name}', skipping it: {e}")
            logger.exception(e)
    return created


def run_channel(name: str, channel: Any) -> None:
    try:
        channel.startup()
    except Exception as e:
        logger.error(f"[ChannelManager] Channel '{name}' startup error: {e}")
        logger.exception(e)


def start_channels(created: list[tuple[str, Any]]) -> None:
    ordered = sorted(created, key=lambda entry: entry[0] != "web")  # the web console first
    for i, (name, channel) in enumerate(ordered):
        if i > 0:
            time.sleep(0.1)
        threading.Thread(
            target=run_channel, args=(name, channel), name=f"channel-{name}", daemon=True
        ).start()


def on_signal(signo: int, _frame: FrameType | None) -> None:
    logger.info(f"signal {signo} received, exiting...")
    sys.exit(0)


def run() -> None:
    try:
        load_config()
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        names = channel_names()
        logger.info(f"[App] Starting channels: {names}")
        start_channels(create_channels(names))
        deadline = time.monotonic() + profile.MAX_LIFETIME_SECONDS
        while time.monotonic() < deadline:
            time.sleep(1)
        logger.error("fake CoW host: lifetime over, exiting")
        os._exit(3)
    except Exception as e:
        logger.error("App startup failed!")
        logger.exception(e)


if __name__ == "__main__":
    run()
