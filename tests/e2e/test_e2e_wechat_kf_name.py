"""Our runtime under upstream CowAgent's channel name: ``channel_type: "wechat_kf"`` with upstream's
``wechat_kf_*`` keys and no port answers on upstream's 9888, and takes over upstream's cursor file."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sandbox.harness import LOOPBACK, REPO_ROOT, clean_environ, wait_until

UPSTREAM_PORT = 9888


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _cursor_after_everything(emu, kf: str) -> str:
    """The cursor upstream's channel would have saved after pulling everything there is."""
    with _quiet_urllib3():  # these hand-made calls put an access_token in their URLs on purpose
        return _pull_everything(emu, kf)


@contextlib.contextmanager
def _quiet_urllib3() -> Iterator[None]:
    urllib3_logger = logging.getLogger("urllib3")
    previous = urllib3_logger.level
    urllib3_logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        urllib3_logger.setLevel(previous)


def _pull_everything(emu, kf: str) -> str:
    token = requests.get(
        emu.api_base + "gettoken", params={"corpid": emu.corp_id, "corpsecret": emu.secret}, timeout=5
    ).json()["access_token"]
    cursor, has_more = "", True
    for _ in range(100):  # bounded
        if not has_more:
            break
        page = requests.post(
            emu.api_base + "kf/sync_msg",
            params={"access_token": token},
            json={"open_kfid": kf, "cursor": cursor, "limit": 1000},
            timeout=5,
        ).json()
        cursor, has_more = page["next_cursor"], bool(page["has_more"])
    return cursor


def test_wechat_kf_keys_and_no_port_answer_on_9888_from_upstreams_cursor(emu, tmp_path: Path):
    if not _port_free(UPSTREAM_PORT):
        pytest.fail(f"port {UPSTREAM_PORT} is taken on this machine; the test needs it")
    kf = emu.default_kfid
    user = emu.add_customer("老用户")
    emu.customer_text(kf, user, "上游时期的旧消息", notify=False)  # upstream answered it long ago
    upstream_file = tmp_path / "wechat_kf_cursors.json"
    upstream_file.write_text(json.dumps({kf: _cursor_after_everything(emu, kf)}), encoding="utf-8")
    config = {
        "channel_type": "wechat_kf",
        "bot_type": "echo",
        "wechat_kf_corp_id": emu.corp_id,
        "wechat_kf_secret": emu.secret,
        "wechat_kf_token": emu.callback_token,
        "wechat_kf_aes_key": emu.aes_key,
        "wechat_kf_cursor_path": str(upstream_file),
        "wechatcom_kf_api_base": emu.api_base,
        "wechatcom_kf_host": LOOPBACK,
        "wechatcom_kf_cursor_dir": str(tmp_path / "state"),
        # Without the adopted cursor, the old message would be answered after this start.
        "wechatcom_kf_skip_history_on_first_start": False,
    }
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    log = tmp_path / "app.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "app.py", "--config", str(tmp_path / "config.json")],
            cwd=REPO_ROOT,
            env=clean_environ(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        emu.callback_url = f"http://{LOOPBACK}:{UPSTREAM_PORT}/wxkf/"
        wait_until(lambda: proc.poll() is not None or emu.verify_url()[0] == 200, 30)
        assert proc.poll() is None, log.read_text(errors="replace")
        emu.customer_text(kf, user, "我换新渠道了", wait=True)
        sends = emu.wait_for_sends(1, timeout=15)
        assert [s.text for s in sends] == ["你说：我换新渠道了"]  # not the old message
        assert "adopted 1 cursor(s)" in log.read_text(errors="replace")
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
