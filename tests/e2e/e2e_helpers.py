"""Helpers of the end-to-end tests: a runner that starts the channel in this process against the
emulator, ``app.py`` subprocesses (``sandbox.harness``, shared with the benchmarks), and oracles."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import config
from bridge.bridge import Bridge
from channel.wechatcom_kf.outbound.msgid import make_msgid
from channel.wechatcom_kf.store import JsonFileStore
from sandbox.emulator import WeComEmulator
from sandbox.harness import AppProcess

# Small windows and timeouts keep the suite fast; each test overrides what it exercises.
FAST_SETTINGS: dict[str, Any] = {
    "wechatcom_kf_merge_window_seconds": 0.3,
    "wechatcom_kf_request_timeout": 5.0,
    "wechatcom_kf_host": "127.0.0.1",
    "wechatcom_kf_port": 0,
    "bot_type": "echo",
    "shutdown_timeout_seconds": 5.0,
    # One answer per message: the protocol tests send many messages per customer within seconds.
    "wechatcom_kf_flood_max_messages": 0,
}


def channel_overrides(emu: WeComEmulator, state_dir: Path, **overrides: Any) -> dict[str, Any]:
    """Config keys for a channel pointed at ``emu`` with its state in ``state_dir``."""
    return {
        **emu.channel_config(),
        **FAST_SETTINGS,
        "wechatcom_kf_cursor_dir": str(state_dir),
        **overrides,
    }


class ChannelRunner:
    """Starts WechatComKfChannel instances in this process; stops them all at the end of a test."""

    def __init__(self, emu: WeComEmulator, tmp_path: Path) -> None:
        self.emu = emu
        self.tmp_path = tmp_path
        self.state_dir = tmp_path / "state"
        self._running: list[tuple[Any, threading.Thread]] = []

    def start(self, channel_class: type | None = None, *, bot: Any = None, **overrides: Any) -> Any:
        from channel.wechatcom_kf.wechatcom_kf_channel import WechatComKfChannel

        config_file = self.tmp_path / "config.json"
        config_file.write_text("{}", encoding="utf-8")
        config.load_config(
            str(config_file), overrides=channel_overrides(self.emu, self.state_dir, **overrides), environ={}
        )
        Bridge().reset()
        if bot is not None:
            Bridge().set_bot(bot)
        channel = (channel_class or WechatComKfChannel)()
        channel.channel_type = "wechatcom_kf"
        thread = threading.Thread(target=channel.startup, name="test-channel", daemon=True)
        thread.start()
        assert channel.wait_ready(10), "callback server did not start"
        self._running.append((channel, thread))
        self.emu.callback_url = f"http://127.0.0.1:{channel.port}/wxkf/"
        return channel

    def stop(self, channel: Any) -> None:
        for i, (running, thread) in enumerate(self._running):
            if running is channel:
                running.stop()
                thread.join(15)
                del self._running[i]
                return

    def stop_all(self) -> None:
        while self._running:
            self.stop(self._running[-1][0])


def answers_per_message(emu: WeComEmulator, inbound_msgids: Iterable[str]) -> dict[str, int]:
    """Successful kf/send_msg per inbound customer message (first parts only: one answer each).

    A reply's msgid is derived from the inbound msgid it answers (``make_msgid(inbound, part)``), so a
    send is attributed by its msgid; sends refused as duplicates are not in ``emu.sends``.
    """
    first_part = {make_msgid(m, 0): m for m in inbound_msgids}
    counts = dict.fromkeys(first_part.values(), 0)
    for sent in emu.sends:
        if sent.api.endswith("send_msg") and sent.msgid in first_part:
            counts[first_part[sent.msgid]] += 1
    return counts


def app_with_fake_llm(emu: WeComEmulator, tmp_path: Path, llm_base: str, **settings: Any) -> AppProcess:
    """An ``app.py`` subprocess (not started) for ``emu``, its bot on the fake OpenAI server ``llm_base``."""
    values: dict[str, Any] = {
        "wechatcom_kf_merge_window_seconds": 0.3,
        "wechatcom_kf_request_timeout": 5.0,
        "bot_type": "openai",
        "open_ai_api_key": "sk-test-key-for-fake-server",
        "open_ai_api_base": llm_base,
        "shutdown_timeout_seconds": 5.0,
        "wechatcom_kf_flood_max_messages": 0,  # one answer per message (see FAST_SETTINGS)
        **settings,
    }
    return AppProcess(emu, values, tmp_path)


def start_app(app: AppProcess) -> None:
    """Start (or restart) ``app`` and wait until it answers a URL verification."""
    app.start()
    app.wait_ready(30, verified=True)


def pending_left(state_dir: Path) -> dict[str, list[str]]:
    """Msgids still pending in a stopped app's JSON state, per account (should be empty at the end)."""
    store = JsonFileStore(state_dir)
    try:
        return {kfid: [i["msgid"] for i in store.pending(kfid)] for kfid in store.pending_accounts()}
    finally:
        store.close()


def refused_resends(emu: WeComEmulator) -> int:
    """Sends the emulator refused because their msgid was used (a part resent after a crash)."""
    return sum(1 for r in emu.rejections if r.api.endswith("send_msg") and "exist" in r.errmsg)
