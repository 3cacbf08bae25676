"""start_sandbox: what it writes into the configuration, what it serves, and that stop() cleans up."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from config import all_settings
from sandbox.launcher import SANDBOX_WELCOME_TEXT, SandboxHandle, start_sandbox

ROOT = Path(__file__).resolve().parents[2]
CREDENTIAL_ENV = ("WECHATCOM_CORP_ID", "WECHATCOM_KF_SECRET", "WECHATCOM_KF_TOKEN", "WECHATCOM_KF_AES_KEY")


@pytest.fixture
def started() -> Iterator[tuple[dict[str, Any], SandboxHandle]]:
    config: dict[str, Any] = {"channel_type": "terminal", "wechatcom_kf_port": 0}
    handle = start_sandbox(config)
    try:
        yield config, handle
    finally:
        handle.stop()


def _listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def test_points_the_channel_at_the_emulator(started: tuple[dict[str, Any], SandboxHandle]) -> None:
    config, handle = started
    emu = handle.emulator
    assert config["channel_type"] == "wechatcom_kf"
    assert config["wechatcom_corp_id"] == emu.corp_id
    assert config["wechatcom_kf_secret"] == emu.secret
    assert config["wechatcom_kf_token"] == emu.callback_token
    assert config["wechatcom_kf_aes_key"] == emu.aes_key
    assert len(config["wechatcom_kf_aes_key"]) == 43
    assert config["wechatcom_kf_api_base"] == emu.api_base
    assert config["wechatcom_kf_api_base"].startswith("http://127.0.0.1:")
    assert config["wechatcom_kf_host"] == "127.0.0.1"
    assert emu.callback_url == f"http://127.0.0.1:{config['wechatcom_kf_port']}/wxkf/"
    assert config["wechatcom_kf_welcome_text"] == SANDBOX_WELCOME_TEXT
    assert 0 < config["wechatcom_kf_merge_window_seconds"] < 3.0
    assert handle.url == f"{emu.api_base.removesuffix('cgi-bin/')}sandbox/"


def test_credentials_are_fresh_per_start() -> None:
    first: dict[str, Any] = {}
    second: dict[str, Any] = {}
    a, b = start_sandbox(first), start_sandbox(second)
    try:
        for key in ("wechatcom_corp_id", "wechatcom_kf_secret", "wechatcom_kf_token", "wechatcom_kf_aes_key"):
            assert first[key] and second[key] and first[key] != second[key], key
        assert first["wechatcom_kf_cursor_dir"] != second["wechatcom_kf_cursor_dir"]
        assert first["wechatcom_kf_port"] != second["wechatcom_kf_port"]
    finally:
        a.stop()
        b.stop()


def test_state_lives_in_a_fresh_temp_dir_removed_on_stop() -> None:
    config: dict[str, Any] = {"wechatcom_kf_cursor_dir": "tmp"}
    handle = start_sandbox(config)
    state_dir = config["wechatcom_kf_cursor_dir"]
    try:
        assert os.path.isabs(state_dir) and os.path.isdir(state_dir)
        assert os.listdir(state_dir) == []
        assert state_dir == handle.state_dir
    finally:
        handle.stop()
    assert not os.path.exists(state_dir)


def test_keeps_a_free_configured_port_and_replaces_a_busy_one() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    config: dict[str, Any] = {"wechatcom_kf_port": free_port}
    handle = start_sandbox(config)
    handle.stop()
    assert config["wechatcom_kf_port"] == free_port

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        busy_port = busy.getsockname()[1]
        config = {"wechatcom_kf_port": busy_port}
        handle = start_sandbox(config)
        handle.stop()
    assert config["wechatcom_kf_port"] != busy_port
    assert config["wechatcom_kf_port"] > 0


def test_a_configured_welcome_text_is_kept() -> None:
    config: dict[str, Any] = {"wechatcom_kf_welcome_text": "欢迎光临"}
    handle = start_sandbox(config)
    handle.stop()
    assert config["wechatcom_kf_welcome_text"] == "欢迎光临"


def test_exported_credentials_do_not_leak_into_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WECHATCOM_KF_SECRET", "real-secret-from-the-shell")
    monkeypatch.setenv("WECHAT_KF_TOKEN", "real-token-alias")
    monkeypatch.delenv("WECHATCOM_KF_TOKEN", raising=False)
    config: dict[str, Any] = {}
    handle = start_sandbox(config)
    try:
        # The channel reads environment variables before config.json: they must agree with the sandbox.
        assert os.environ["WECHATCOM_KF_SECRET"] == handle.emulator.secret
        assert os.environ["WECHATCOM_KF_TOKEN"] == handle.emulator.callback_token
        assert "WECHAT_KF_TOKEN" not in os.environ
    finally:
        handle.stop()
    assert os.environ["WECHATCOM_KF_SECRET"] == "real-secret-from-the-shell"
    assert os.environ["WECHAT_KF_TOKEN"] == "real-token-alias"
    assert "WECHATCOM_KF_TOKEN" not in os.environ


def test_unset_credentials_stay_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CREDENTIAL_ENV:
        monkeypatch.delenv(name, raising=False)
    handle = start_sandbox({})
    try:
        assert not any(name in os.environ for name in CREDENTIAL_ENV)
    finally:
        handle.stop()


def test_serves_the_chat_page_and_its_static_files(started: tuple[dict[str, Any], SandboxHandle]) -> None:
    _, handle = started
    page = requests.get(handle.url, timeout=5)
    assert page.status_code == 200
    assert "text/html" in page.headers.get("Content-Type", "")
    assert 'data-testid="messages"' in page.text
    for name, kind in (("app.js", "javascript"), ("style.css", "css")):
        static = requests.get(handle.url + "static/" + name, timeout=5)
        assert static.status_code == 200, name
        assert kind in static.headers.get("Content-Type", ""), name


def test_stop_closes_the_emulator_and_is_idempotent() -> None:
    handle = start_sandbox({})
    port = handle.emulator.port
    assert _listening("127.0.0.1", port)
    handle.stop()
    handle.stop()
    assert not _listening("127.0.0.1", port)


def test_refuses_a_non_loopback_host() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        start_sandbox({}, host="0.0.0.0")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _read_url(proc: subprocess.Popen[str], timeout: float) -> str:
    """The `sandbox: <url>` line the command prints (read in a thread, bounded in time)."""
    found: queue.Queue[str] = queue.Queue()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:  # drains stdout until the process exits
            match = re.search(r"http://127\.0\.0\.1:\d+/sandbox/", line)
            if match:
                found.put(match.group(0))

    threading.Thread(target=reader, daemon=True).start()
    try:
        return found.get(timeout=timeout)
    except queue.Empty:
        pytest.fail("python app.py --sandbox printed no sandbox URL")


def _wait_listening(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not _listening("127.0.0.1", port):
        assert time.monotonic() < deadline, f"nothing listens on the channel port {port}"
        time.sleep(0.1)


def test_the_sandbox_command_answers_a_customer(tmp_path: Path) -> None:
    """`python app.py --sandbox` as a user runs it: page served, a customer answered, clean stop."""
    channel_port = _free_port()
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({"open_ai_api_key": "", "wechatcom_kf_port": channel_port}))
    names = {n for s in all_settings() for n in ([s.env] if s.env else []) + [a.upper() for a in s.aliases]}
    env = {k: v for k, v in os.environ.items() if k not in names}
    log = (tmp_path / "app.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--sandbox", "--config", str(config_file)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        url = _read_url(proc, 60.0)
        _wait_listening(channel_port, 30.0)
        assert "data-testid" in requests.get(url, timeout=5).text
        api = url + "api/"
        kf = requests.get(api + "state", timeout=5).json()["accounts"][0]["open_kfid"]
        user = requests.post(api + "customers", json={"nickname": "cli"}, timeout=5).json()["external_userid"]
        requests.post(
            api + "send", json={"open_kfid": kf, "external_userid": user, "text": "在吗"}, timeout=5
        )
        since, replies = 0, []
        for _ in range(20):  # long polls of at most 1 s each
            feed = requests.get(api + "feed", params={"since": since, "wait": 1}, timeout=10).json()
            since = feed["next"]
            replies += [
                i["text"] for i in feed["items"] if i["from"] == "bot" and i["external_userid"] == user
            ]
            if replies:
                break
        assert replies == ["你说：在吗"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
