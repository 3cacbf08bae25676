import json
import os
import queue
import re
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


# The offline bot asked for on purpose: tests about channels are not refused for a missing model key.
ECHO = {"bot_type": "echo"}
BLOCKING = "app_test_channels:BlockingChannel"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \S+: ")


def clean_env():
    """The environment without any declared setting's variable (a developer's shell may set some)."""
    declared = {s.env for s in config.all_settings()} | {
        a.upper() for s in config.all_settings() for a in s.aliases
    }
    return {k: v for k, v in os.environ.items() if k not in declared}


def start_app(tmp_path, cfg, extra_env=None, *, sandbox=False):
    (tmp_path / "app_test_channels.py").write_text(textwrap.dedent(TEST_CHANNELS), encoding="utf-8")
    cfg_path = tmp_path / "config.json"
    cfg_path.write_text(json.dumps(cfg), encoding="utf-8")
    env = clean_env()
    env["PYTHONPATH"] = str(tmp_path)
    env.update(extra_env or {})
    return subprocess.Popen(
        [sys.executable, "app.py", "--config", str(cfg_path), *(["--sandbox"] if sandbox else [])],
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
    config_line = next(line for line in stderr.splitlines() if "effective config (" in line)
    shown = config.logged_config(config_line)
    assert shown["open_ai_api_key"] == "***" and shown["wechatcom_kf_token"] == "***"
    assert " INFO config: " in config_line  # time, level and logger name in every line


def test_channel_missing_settings_exits_2_with_one_line(tmp_path):
    proc = start_app(tmp_path, {"channel_type": "app_test_channels:MissingSettingsChannel", **ECHO})
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    problem = [line for line in err.splitlines() if "missing required settings" in line]
    assert problem == [
        "configuration error: missing required settings: wechatcom_corp_id, wechatcom_kf_secret"
    ]


def test_unknown_channel_type_exits_2_listing_known_types(tmp_path):
    proc = start_app(tmp_path, {"channel_type": "nope", **ECHO})
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
    proc = start_app(tmp_path, {"channel_type": "wechatcom_kf", **ECHO})
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    problem = [line for line in err.splitlines() if "missing required settings" in line]
    assert len(problem) == 1
    for key in ("wechatcom_corp_id", "wechatcom_kf_secret", "wechatcom_kf_token", "wechatcom_kf_aes_key"):
        assert key in problem[0]


def refusal(proc):
    """Waits for a refused start: the exit code and the stderr lines that are not log records."""
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "STARTED" not in out  # refused before any channel was created
    return proc.returncode, [line for line in err.splitlines() if not LOG_LINE.match(line)]


def serve_then_stop(proc, ready):
    """Waits for the stdout line ``ready``, stops the app with SIGTERM; its exit code and stderr."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_lines, args=(proc.stdout, lines), daemon=True).start()
    try:
        assert ready(lines.get(timeout=60))
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return code, proc.stderr.read()


MISSING_KEY = (
    "configuration error: open_ai_api_key is empty — set it (or OPEN_AI_API_KEY), "
    'or set "bot_type": "echo" to run the offline echo bot on purpose'
)

UNKNOWN_BOT = (
    "configuration error: unknown bot_type 'baidu'; known types: echo, openai, chatGPT, gpt, dify, deepseek, "
    "dashscope, qwen, zhipu, glm-4, moonshot (any letter case)"
)
UNKNOWN_PROVIDER = (
    "configuration error: unknown model_provider 'wenxin'; known providers: openai, deepseek, qwen, zhipu, "
    "moonshot, siliconflow, ollama, vllm, fastgpt, maxkb"
)


@pytest.mark.parametrize("bot_type", [None, ""])
def test_no_bot_type_and_no_model_key_refuses_to_start_in_one_line(tmp_path, bot_type):
    cfg = {"channel_type": BLOCKING} if bot_type is None else {"channel_type": BLOCKING, "bot_type": ""}
    code, problem = refusal(start_app(tmp_path, cfg))
    assert (code, problem) == (2, [MISSING_KEY])


@pytest.mark.parametrize("bot_type", ["openai", "chatGPT"])
def test_explicit_openai_without_a_key_refuses_to_start(tmp_path, bot_type):
    code, problem = refusal(start_app(tmp_path, {"channel_type": BLOCKING, "bot_type": bot_type}))
    assert (code, problem) == (
        2,
        [
            f"configuration error: open_ai_api_key is empty but bot_type is {bot_type!r}"
            " — set it (or OPEN_AI_API_KEY)"
        ],
    )


def test_unknown_bot_type_refuses_to_start_listing_the_known_types(tmp_path):
    cfg = {"channel_type": BLOCKING, "bot_type": "baidu", "open_ai_api_key": "sk-x"}
    code, problem = refusal(start_app(tmp_path, cfg))
    assert (code, problem) == (2, [UNKNOWN_BOT])


@pytest.mark.parametrize("sandbox", [False, True])
def test_unknown_model_provider_refuses_to_start_listing_the_known_ones(tmp_path, sandbox):
    cfg = {"channel_type": BLOCKING, "wechatcom_kf_port": 0, "model_provider": "wenxin"}
    code, problem = refusal(start_app(tmp_path, cfg, sandbox=sandbox))
    assert (code, problem) == (2, [UNKNOWN_PROVIDER])


def test_model_key_from_the_environment_is_enough(tmp_path):
    proc = start_app(tmp_path, {"channel_type": BLOCKING}, {"OPEN_AI_API_KEY": "sk-from-env"})
    code, err = serve_then_stop(proc, lambda line: line == "STARTED")
    assert code == 0 and "configuration error" not in err


def test_explicit_echo_starts_and_warns_that_customers_get_echoes(tmp_path):
    code, err = serve_then_stop(
        start_app(tmp_path, {"channel_type": BLOCKING, **ECHO}), lambda x: x == "STARTED"
    )
    assert code == 0
    warnings = [line for line in err.splitlines() if " WARNING app: " in line]
    assert len(warnings) == 1 and "echo" in warnings[0] and "你说：" in warnings[0]


def test_sandbox_prints_its_url_and_starts_without_a_model_key(tmp_path):
    proc = start_app(tmp_path, {"wechatcom_kf_port": 0}, sandbox=True)
    code, err = serve_then_stop(proc, lambda line: line.startswith("sandbox: http://127.0.0.1:"))
    assert code == 0 and "configuration error" not in err
    assert "channel wechatcom_kf started" in err  # a SIGTERM during the start still lets it finish
    assert " WARNING app: " not in err  # the echo bot is the point of the sandbox
    # The effective configuration is logged after the sandbox rewrote it: the values in effect.
    effective = next(line for line in err.splitlines() if "effective config (" in line)
    assert config.logged_config(effective)["wechatcom_kf_api_base"].startswith("http://127.0.0.1:")


def test_sandbox_with_an_unknown_bot_type_is_refused(tmp_path):
    code, problem = refusal(start_app(tmp_path, {"wechatcom_kf_port": 0, "bot_type": "baidu"}, sandbox=True))
    assert (code, problem) == (2, [UNKNOWN_BOT])
