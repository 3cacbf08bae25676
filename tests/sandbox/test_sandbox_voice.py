"""Voice in the sandbox: a local fake transcribes when nothing real is configured; a model preset
without a key still starts the sandbox (echo) and says so in one line."""

from __future__ import annotations

import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path
from typing import Any

import pytest
import requests

from bridge.bridge import VOICE_TO_TEXT, Bridge
from bridge.reply import ReplyType
from config import all_settings
from sandbox.launcher import start_sandbox
from sandbox.speech import SANDBOX_TRANSCRIPTION

ROOT = Path(__file__).resolve().parents[2]


def wav_bytes(seconds: float = 0.5) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x10\x00\xf0\xff" * int(8000 * seconds))
    return buf.getvalue()


def test_the_sandbox_transcribes_voice_without_any_speech_setting(tmp_path: Path) -> None:
    Bridge._drop_instance()
    handle = start_sandbox({"wechatcom_kf_port": 0})
    try:
        assert handle.speech is not None
        path = tmp_path / "v.wav"
        path.write_bytes(wav_bytes())
        reply = Bridge().fetch_voice_to_text(str(path))
        assert (reply.type, reply.content) == (ReplyType.TEXT, SANDBOX_TRANSCRIPTION)
    finally:
        handle.stop()
    assert VOICE_TO_TEXT not in Bridge().bots  # stop() took the fake away again
    Bridge._drop_instance()


def test_a_real_speech_to_text_is_left_alone() -> None:
    handle = start_sandbox({"wechatcom_kf_port": 0, "model_provider": "siliconflow", "open_ai_api_key": "k"})
    try:
        assert handle.speech is None
    finally:
        handle.stop()


def _stdout_lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=reader, daemon=True).start()
    return lines


def _sandbox_url(lines: queue.Queue[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            match = re.search(r"http://127\.0\.0\.1:\d+/sandbox/", lines.get(timeout=1))
        except queue.Empty:
            continue
        if match:
            return match.group(0)
    pytest.fail("python app.py --sandbox printed no sandbox URL")


def _bot_replies(api: str, user: str, want: int) -> list[str]:
    since, replies = 0, []
    for _ in range(30):  # long polls of at most 1 s each
        feed = requests.get(api + "feed", params={"since": since, "wait": 1}, timeout=10).json()
        since = feed["next"]
        replies += [i["text"] for i in feed["items"] if i["from"] == "bot" and i["external_userid"] == user]
        if len(replies) >= want:
            break
    return replies


def _send_voice(api: str, kf: str, user: str) -> None:
    fields: dict[str, Any] = {"open_kfid": kf, "external_userid": user, "kind": "voice"}
    files = {"file": ("hello.wav", wav_bytes(1.0), "audio/wav")}
    requests.post(api + "upload", data=fields, files=files, timeout=30).raise_for_status()


def test_app_sandbox_with_a_keyless_preset_starts_echo_says_so_and_answers_voice(tmp_path: Path) -> None:
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({"model_provider": "deepseek", "wechatcom_kf_port": 0}))
    names = {n for s in all_settings() for n in ([s.env] if s.env else []) + [a.upper() for a in s.aliases]}
    env = {k: v for k, v in os.environ.items() if k not in names}
    log_path = tmp_path / "app.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "app.py", "--sandbox", "--config", str(config_file)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            api = _sandbox_url(_stdout_lines(proc), 60.0) + "api/"
            kf = requests.get(api + "state", timeout=5).json()["accounts"][0]["open_kfid"]
            user = requests.post(api + "customers", json={"nickname": "v"}, timeout=5).json()[
                "external_userid"
            ]
            _send_voice(api, kf, user)
            assert _bot_replies(api, user, 1) == [f"你说：{SANDBOX_TRANSCRIPTION}"]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=40) == 0
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
    notes = [
        line
        for line in log_path.read_text().splitlines()
        if "model_provider 'deepseek' has no API key" in line
    ]
    assert len(notes) == 1 and "echo" in notes[0]
