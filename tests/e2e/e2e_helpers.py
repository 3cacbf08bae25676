"""Helpers of the end-to-end tests: a runner that starts the channel in this process against the
emulator, and ways to count answers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import config
from bridge.bridge import Bridge
from channel.wechatcom_kf.outbound.msgid import make_msgid
from sandbox.emulator import WeComEmulator

REPO_ROOT = Path(__file__).resolve().parents[2]

# Small windows and timeouts keep the suite fast; each test overrides what it exercises.
FAST_SETTINGS: dict[str, Any] = {
    "wechatcom_kf_merge_window_seconds": 0.3,
    "wechatcom_kf_request_timeout": 5.0,
    "wechatcom_kf_host": "127.0.0.1",
    "wechatcom_kf_port": 0,
    "bot_type": "echo",
    "shutdown_timeout_seconds": 5.0,
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


def write_config(path: Path, values: dict[str, Any]) -> Path:
    path.write_text(json.dumps(values, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def free_port() -> int:
    """A free TCP port on loopback (for an app subprocess's callback server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AppProcess:
    """``python app.py --config ...`` with its output in a log file under the test's temp dir."""

    def __init__(self, config_path: Path, log_dir: Path, port: int) -> None:
        self.config_path, self.log_dir, self.port = config_path, log_dir, port
        self.proc: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []

    def start(self, emu) -> None:
        log = self.log_dir / f"app-{len(self.logs)}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "app.py", "--config", str(self.config_path)],
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={k: v for k, v in os.environ.items() if not k.startswith(("WECHATCOM_", "WECHAT_KF_"))},
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # bounded: wait for the callback server to answer
            assert self.proc.poll() is None, log.read_text(errors="replace")[-2000:]
            if emu.verify_url()[0] == 200:
                return
            time.sleep(0.1)
        raise AssertionError("app did not start listening")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                return -9
        return int(self.proc.returncode)


def app_with_fake_llm(emu: WeComEmulator, tmp_path: Path, llm_base: str, **settings: Any) -> AppProcess:
    """An ``app.py`` subprocess (not started) for ``emu``, its bot on the fake OpenAI server ``llm_base``."""
    port = free_port()
    emu.callback_url = f"http://127.0.0.1:{port}/wxkf/"
    values: dict[str, Any] = {
        **emu.channel_config(),
        "wechatcom_kf_cursor_dir": str(tmp_path / "state"),
        "wechatcom_kf_merge_window_seconds": 0.3,
        "wechatcom_kf_request_timeout": 5.0,
        "bot_type": "openai",
        "open_ai_api_key": "sk-test-key-for-fake-server",
        "open_ai_api_base": llm_base,
        "shutdown_timeout_seconds": 5.0,
        **settings,
    }
    return AppProcess(write_config(tmp_path / "config.json", values), tmp_path, port)
