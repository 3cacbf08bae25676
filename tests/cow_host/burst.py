"""A burst through a fake CoW host, for benchmarks: N customers write once each, the bot takes L s."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sandbox.emulator import WeComEmulator

from .kf import launch

BURST_TIMEOUT = 300.0


def run_burst(
    directory: Path,
    version: str,
    customers: int = 20,
    latency: float = 0.2,
    settings: dict[str, Any] | None = None,
) -> float:
    """Seconds from the first customer message to the last answer reaching the emulator, with the
    channel in a fake CoW ``version`` whose bot answers after ``latency`` s (``settings``: channel
    settings over the defaults, e.g. ``{"wechatcom_kf_own_dispatch": False}`` for CoW's own queue)."""
    emu = WeComEmulator().start()
    try:
        host = launch(emu, directory, version, bot={"latency": latency}, settings=settings)
        try:
            kf = emu.default_kfid
            users = [emu.add_customer(f"客户{i}") for i in range(customers)]
            started = time.monotonic()
            for i, user in enumerate(users):
                emu.customer_text(kf, user, f"问题{i}")
            emu.wait_for_sends(customers, timeout=BURST_TIMEOUT)
            return time.monotonic() - started
        finally:
            host.stop()
    finally:
        emu.stop()
