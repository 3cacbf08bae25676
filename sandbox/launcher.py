"""Start the sandbox: a local WeCom emulator the channel talks to instead of WeCom.

``python app.py --sandbox`` calls :func:`start_sandbox` before it creates the channels. The sandbox
rewrites the in-memory configuration (never config.json) so that the ``wechatcom_kf`` channel uses
fresh credentials issued by the emulator, listens on loopback and keeps its state in a temporary
directory: trying the sandbox never touches a real deployment's cursor or pending messages.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.emulator import WeComEmulator

logger = logging.getLogger(__name__)

SANDBOX_WELCOME_TEXT = "您好，我是 AI 客服（沙盒），有什么可以帮您？"
# Quick options under the welcome: one reaches the bot as its text, the other hands off to a human.
SANDBOX_WELCOME_MENU: dict[str, Any] = {
    "list": [
        {"type": "click", "click": {"id": "sandbox_faq", "content": "你能做什么？"}},
        {"type": "click", "click": {"id": "handoff", "content": "转人工"}},
    ],
}
# Short, so that an image sent alone in the sandbox is answered quickly, yet long enough to type a
# question after it and see both answered as one turn.
SANDBOX_MERGE_WINDOW_SECONDS = 1.5
LOOPBACK = "127.0.0.1"

# Environment variables win over config.json in the channel's settings, so a deployer's real
# credentials exported in the shell would otherwise point the sandbox channel at real WeCom.
_ENV_OVERRIDDEN_KEYS = (
    "wechatcom_corp_id",
    "wechatcom_kf_secret",
    "wechatcom_kf_token",
    "wechatcom_kf_aes_key",
    "wechatcom_kf_api_base",
    "wechatcom_kf_host",
    "wechatcom_kf_port",
    "wechatcom_kf_cursor_dir",
    "wechatcom_kf_welcome_text",
    "wechatcom_kf_welcome_menu",
    "wechatcom_kf_merge_window_seconds",
)


@dataclass
class SandboxHandle:
    """What ``start_sandbox`` returns: the page URL, the emulator, and how to stop both."""

    url: str
    emulator: WeComEmulator
    channel_port: int
    state_dir: str
    speech: Any = None  # sandbox.speech.SandboxSpeech when the fake transcribes voice
    _saved_env: dict[str, str | None] = field(default_factory=dict, repr=False)
    _stopped: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def callback_url(self) -> str:
        return f"http://{LOOPBACK}:{self.channel_port}/wxkf/"

    def stop(self) -> None:
        """Stop the emulator, restore overridden environment variables, delete the temp state."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        try:
            if self.speech is not None:
                self.speech.stop()
            self.emulator.stop()
        finally:
            _restore_env(self._saved_env)
            shutil.rmtree(self.state_dir, ignore_errors=True)
        logger.info("sandbox stopped")


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _choose_channel_port(config: MutableMapping[str, Any]) -> int:
    """The configured callback port when it is free on loopback, else any free port."""
    configured = config.get("wechatcom_kf_port")
    try:
        port = int(configured) if configured not in (None, "") else 0
    except (TypeError, ValueError):
        port = 0
    if 0 < port < 65536 and _port_is_free(LOOPBACK, port):
        return port
    return _free_port(LOOPBACK)


def _env_names(key: str) -> list[str]:
    """The environment variables the channel reads for ``key`` (primary, then aliases)."""
    try:
        from channel.wechatcom_kf.settings import KF_SETTINGS
    except ImportError:  # the channel package is optional for the emulator alone
        return [key.upper()]
    for spec in KF_SETTINGS:
        if spec.name == key:
            names = [spec.env] if spec.env else []
            return names + [alias.upper() for alias in spec.aliases]
    return [key.upper()]


def _override_env(values: dict[str, Any]) -> dict[str, str | None]:
    """Make set environment variables agree with the sandbox values; returns what to restore."""
    saved: dict[str, str | None] = {}
    for key, value in values.items():
        names = _env_names(key)
        if not any(name in os.environ for name in names):
            continue
        logger.warning("sandbox: ignoring environment variable(s) %s for this run", ", ".join(names))
        for name in names:
            saved[name] = os.environ.get(name)
            os.environ.pop(name, None)
        text = json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)
        os.environ[names[0]] = text
    return saved


def _restore_env(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def start_sandbox(
    config: MutableMapping[str, Any], *, host: str = LOOPBACK, emulator_port: int = 0
) -> SandboxHandle:
    """Start the emulator and point the ``wechatcom_kf`` settings in ``config`` at it.

    The bot is left as configured (the echo bot answers when no model API key is set); without a
    configured speech-to-text, a local fake transcribes voice messages (``sandbox/speech.py``).
    """
    if host != LOOPBACK:
        raise ValueError("the sandbox listens on 127.0.0.1 only")
    emu = WeComEmulator(host=host, port=emulator_port)
    emu.start()
    try:
        channel_port = _choose_channel_port(config)
        state_dir = tempfile.mkdtemp(prefix="wechatcom-kf-sandbox-")
        values: dict[str, Any] = {
            "wechatcom_corp_id": emu.corp_id,
            "wechatcom_kf_secret": emu.secret,
            "wechatcom_kf_token": emu.callback_token,
            "wechatcom_kf_aes_key": emu.aes_key,
            "wechatcom_kf_api_base": emu.api_base,
            "wechatcom_kf_host": LOOPBACK,
            "wechatcom_kf_port": channel_port,
            "wechatcom_kf_cursor_dir": state_dir,
            "wechatcom_kf_welcome_text": config.get("wechatcom_kf_welcome_text") or SANDBOX_WELCOME_TEXT,
            "wechatcom_kf_welcome_menu": config.get("wechatcom_kf_welcome_menu") or SANDBOX_WELCOME_MENU,
            "wechatcom_kf_merge_window_seconds": SANDBOX_MERGE_WINDOW_SECONDS,
        }
        config["channel_type"] = "wechatcom_kf"
        for key, value in values.items():
            config[key] = value
        saved_env = _override_env({k: values[k] for k in _ENV_OVERRIDDEN_KEYS})
        handle = SandboxHandle(
            url=emu.page_url,
            emulator=emu,
            channel_port=channel_port,
            state_dir=state_dir,
            _saved_env=saved_env,
        )
        emu.callback_url = handle.callback_url
        from sandbox.speech import start_sandbox_speech

        handle.speech = start_sandbox_speech(config)
    except BaseException:
        emu.stop()
        raise
    logger.info("sandbox emulator ready; chat page at %s", handle.url)
    return handle
