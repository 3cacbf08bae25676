import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

import app
import config

ROOT = os.path.dirname(os.path.abspath(app.__file__))

TEST_CHANNELS = """
import threading

from channel.chat_channel import ChatChannel


class BlockingChannel(ChatChannel):
    def __init__(self):
        super().__init__()
        self._stopped = threading.Event()

    def startup(self):
        print("STARTED", flush=True)
        self._stopped.wait()

    def stop(self):
        super().stop()
        print("STOPPED", flush=True)
        self._stopped.set()

    def send(self, reply, context):
        pass


class MissingSettingsChannel(ChatChannel):
    def __init__(self):
        raise ValueError("missing required settings: wechatcom_corp_id, wechatcom_kf_secret")
"""


def start_app(tmp_path, cfg, extra_env=None):
    (tmp_path / "app_test_channels.py").write_text(textwrap.dedent(TEST_CHANNELS), encoding="utf-8")
    cfg_path = tmp_path / "config.json"
    cfg_path.write_text(json.dumps(cfg), encoding="utf-8")
    declared = {s.env for s in config.all_settings()} | {
        a.upper() for s in config.all_settings() for a in s.aliases
    }
    env = {k: v for k, v in os.environ.items() if k not in declared}
    env["PYTHONPATH"] = str(tmp_path)
    env.update(extra_env or {})
    return subprocess.Popen(
        [sys.executable, "app.py", "--config", str(cfg_path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_lines(stream, sink):
    for line in stream:
        sink.put(line.rstrip("\n"))


def test_sigterm_stops_channels_and_exits_zero_with_secrets_masked(tmp_path):
    secrets = {"OPEN_AI_API_KEY": "sk-test-secret-value-123", "WECHATCOM_KF_TOKEN": "tok-secret-456"}
    proc = start_app(tmp_path, {"channel_type": "app_test_channels:BlockingChannel"}, secrets)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_lines, args=(proc.stdout, lines), daemon=True).start()
    try:
        assert lines.get(timeout=30) == "STARTED"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read()
    assert lines.get(timeout=5) == "STOPPED"
    assert "sk-test-secret-value-123" not in stderr and "tok-secret-456" not in stderr
    config_line = next(line for line in stderr.splitlines() if "effective config:" in line)
    shown = json.loads(config_line.split("effective config: ", 1)[1])
    assert shown["open_ai_api_key"] == "***" and shown["wechatcom_kf_token"] == "***"
    assert " INFO config: " in config_line  # time, level and logger name in every line


def test_channel_missing_settings_exits_2_with_one_line(tmp_path):
    proc = start_app(tmp_path, {"channel_type": "app_test_channels:MissingSettingsChannel"})
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    problem = [line for line in err.splitlines() if "missing required settings" in line]
    assert problem == [
        "configuration error: missing required settings: wechatcom_corp_id, wechatcom_kf_secret"
    ]


def test_unknown_channel_type_exits_2_listing_known_types(tmp_path):
    proc = start_app(tmp_path, {"channel_type": "nope"})
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "unknown channel_type 'nope'; known types:" in err and "wechatcom_kf" in err


def test_bad_config_value_exits_2_naming_the_key(tmp_path):
    proc = start_app(tmp_path, {"max_history_turns": "lots"})
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "config key max_history_turns" in err


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("wechatcom_kf", ["wechatcom_kf"]),
        ("wechatcom_kf, terminal", ["wechatcom_kf", "terminal"]),
        (["terminal", " wechatcom_kf "], ["terminal", "wechatcom_kf"]),
        ("", []),
    ],
)
def test_channel_types_accepts_string_csv_and_list(value, expected):
    assert app.channel_types(value) == expected


def test_kf_channel_without_credentials_exits_2_naming_the_keys(tmp_path):
    proc = start_app(tmp_path, {"channel_type": "wechatcom_kf"})
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    problem = [line for line in err.splitlines() if "missing required settings" in line]
    assert len(problem) == 1
    for key in ("wechatcom_corp_id", "wechatcom_kf_secret", "wechatcom_kf_token", "wechatcom_kf_aes_key"):
        assert key in problem[0]


def test_sandbox_prints_its_url_and_stops_on_sigterm(tmp_path):
    cfg_path = tmp_path / "config.json"
    cfg_path.write_text(json.dumps({"wechatcom_kf_port": 0}), encoding="utf-8")
    declared = {s.env for s in config.all_settings()} | {
        a.upper() for s in config.all_settings() for a in s.aliases
    }
    env = {k: v for k, v in os.environ.items() if k not in declared}
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--config", str(cfg_path), "--sandbox"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_lines, args=(proc.stdout, lines), daemon=True).start()
    try:
        first = lines.get(timeout=60)
        assert first.startswith("sandbox: http://127.0.0.1:")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
