"""Every failure to start ``python app.py`` with the wechatcom_kf channel: one line on stderr that names
the setting and the fix (Chinese and English), exit code 2 (the systemd unit does not restart it), no
traceback. Inside an upstream CoW host the same problem is one ERROR log line."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import app
import config
from common.log_file import open_log_file
from sandbox.emulator import WeComEmulator
from sandbox.harness import LOOPBACK, free_port, wait_until
from tests.cow_host import launch

ROOT = Path(app.__file__).resolve().parent
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \S+: ")
VALID_AES_KEY = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ"  # 43 characters of the alphabet


def base_config(tmp_path: Path) -> dict[str, Any]:
    """The channel's keys with fake values on loopback; the API base is a closed local port."""
    return {
        "channel_type": "wechatcom_kf",
        "bot_type": "echo",
        "wechatcom_corp_id": "ww-fake-corp-id",
        "wechatcom_kf_secret": "fake-secret-of-the-startup-tests",
        "wechatcom_kf_token": "fake-callback-token",
        "wechatcom_kf_aes_key": VALID_AES_KEY,
        "wechatcom_kf_host": LOOPBACK,
        "wechatcom_kf_port": free_port(),
        "wechatcom_kf_cursor_dir": str(tmp_path / "state"),
        "wechatcom_kf_api_base": f"http://{LOOPBACK}:9/cgi-bin/",
    }


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without any declared setting's variable, plus ``extra``."""
    declared = {s.env for s in config.all_settings()} | {
        a.upper() for s in config.all_settings() for a in s.aliases
    }
    env = {k: v for k, v in os.environ.items() if k not in declared}
    env.update(extra or {})
    return env


def write_config(tmp_path: Path, cfg: dict[str, Any]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg), encoding="utf-8")
    return path


def run_app(tmp_path: Path, cfg: dict[str, Any], env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "app.py", "--config", str(write_config(tmp_path, cfg))],
        cwd=ROOT,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, proc.stderr


def refusal(tmp_path: Path, cfg: dict[str, Any], env: dict[str, str] | None = None) -> str:
    """The one stderr line that is not a log record, after asserting exit 2 and no traceback."""
    code, stderr = run_app(tmp_path, cfg, env)
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip() and not LOG_LINE.match(line)]
    assert code == 2, stderr
    assert len(lines) == 1, stderr
    return lines[0]


def has_both_languages(line: str) -> bool:
    """Chinese first, then `` / `` and English (as the settings' descriptions: "…（…）/ …")."""
    return re.search(r"[\u4e00-\u9fff].*[ ）]/ [A-Za-z(]", line) is not None


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen()
        yield int(sock.getsockname()[1])


# --- the callback port and host ----------------------------------------------------------------------


def test_port_in_use(tmp_path: Path, busy_port: int) -> None:
    line = refusal(tmp_path, {**base_config(tmp_path), "wechatcom_kf_port": busy_port})
    assert line.startswith("cannot start: ")
    assert f"wechatcom_kf_port {busy_port} is in use by another process" in line
    assert "set wechatcom_kf_port to a free port" in line and has_both_languages(line)


@pytest.mark.parametrize("port", [70000, -1])
def test_port_out_of_range_names_the_key_and_value(tmp_path: Path, port: int) -> None:
    line = refusal(tmp_path, {**base_config(tmp_path), "wechatcom_kf_port": port})
    assert f"wechatcom_kf_port is {port}, out of range: set it to a port between 1 and 65535" in line
    assert has_both_languages(line)


def test_port_out_of_range_names_the_environment_variable(tmp_path: Path) -> None:
    line = refusal(tmp_path, base_config(tmp_path), {"WECHATCOM_KF_PORT": "99999"})
    assert "environment variable WECHATCOM_KF_PORT is 99999, out of range" in line


def test_port_that_is_not_an_integer(tmp_path: Path) -> None:
    line = refusal(tmp_path, {**base_config(tmp_path), "wechatcom_kf_port": "abc"})
    assert line == (
        "configuration error: config key wechatcom_kf_port: 应为整数，实际为 'abc' / "
        "expected an integer, got 'abc'"
    )
    line = refusal(tmp_path, base_config(tmp_path), {"WECHATCOM_KF_PORT": "98x"})
    assert "environment variable WECHATCOM_KF_PORT" in line and "expected an integer, got '98x'" in line


@pytest.mark.parametrize("host", ["192.0.2.1", "no-such-host.invalid"])  # TEST-NET-1: never ours
def test_host_that_cannot_be_bound(tmp_path: Path, host: str) -> None:
    line = refusal(tmp_path, {**base_config(tmp_path), "wechatcom_kf_host": host})
    assert f"wechatcom_kf_host {host} cannot be listened on" in line
    assert "set wechatcom_kf_host to 0.0.0.0" in line and has_both_languages(line)


# --- the state directory and its files -------------------------------------------------------------


def test_state_directory_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a directory")
    line = refusal(tmp_path, base_config(tmp_path))
    assert f"wechatcom_kf_cursor_dir {tmp_path / 'state'} is a file, not a directory" in line
    assert has_both_languages(line)


def test_state_directory_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a directory should be")
    cfg = {**base_config(tmp_path), "wechatcom_kf_cursor_dir": str(tmp_path / "blocker" / "state")}
    line = refusal(tmp_path, cfg)
    assert "does not exist and cannot be created" in line
    assert "set wechatcom_kf_cursor_dir to a writable directory" in line


def read_only_directory(tmp_path: Path) -> Path | None:
    """A directory this user cannot create files in (root ignores modes: try /sys), or None."""
    candidates = [tmp_path / "read-only"]
    candidates[0].mkdir()
    candidates[0].chmod(0o500)
    candidates.append(Path("/sys/kernel"))
    for candidate in candidates:
        try:
            (candidate / ".write-probe").touch()
        except OSError:
            return candidate
        (candidate / ".write-probe").unlink()
    return None


def test_state_directory_that_is_not_writable(tmp_path: Path) -> None:
    directory = read_only_directory(tmp_path)
    if directory is None:
        pytest.skip("no directory here is read-only for this user")
    try:
        line = refusal(tmp_path, {**base_config(tmp_path), "wechatcom_kf_cursor_dir": str(directory)})
    finally:
        (tmp_path / "read-only").chmod(0o700)
    assert f"wechatcom_kf_cursor_dir {directory} is not writable" in line and has_both_languages(line)


def start_and_stop(tmp_path: Path, cfg: dict[str, Any], env: dict[str, str] | None = None) -> str:
    """Start the app, wait until the callback server listens, SIGTERM it; stderr (exit code 0)."""
    err_path = tmp_path / "stderr.log"
    with open(err_path, "w", encoding="utf-8") as err:
        proc = subprocess.Popen(
            [sys.executable, "app.py", "--config", str(write_config(tmp_path, cfg))],
            cwd=ROOT,
            env=clean_env(env),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        listening = wait_until(
            lambda: "callback server listening" in err_path.read_text() or proc.poll() is not None, 30
        )
        assert listening and proc.poll() is None, err_path.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, err_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    return err_path.read_text()


def test_corrupt_state_file_is_moved_aside_and_the_start_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    damaged = b'{"version": 3, "accounts": {"wk1": {"cursor": "c'
    (state / "wechatcom_kf_cursors.json").write_bytes(damaged)
    line = refusal(tmp_path, base_config(tmp_path))
    aside = [p for p in state.iterdir() if p.name.startswith("wechatcom_kf_cursors.json.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes() == damaged  # kept for the operator, not replaced
    assert not (state / "wechatcom_kf_cursors.json").exists()
    assert line.startswith("cannot start: wechatcom_kf_cursor_dir: ") and has_both_languages(line)
    assert "is corrupt (not valid JSON: " in line and f"moved it to {aside[0]}" in line
    assert f"put the backup at {state / 'wechatcom_kf_cursors.json'} and start again" in line
    # As the line says: starting again starts fresh.
    start_and_stop(tmp_path, base_config(tmp_path))


# --- the log file ------------------------------------------------------------------------------------


def test_log_file_in_a_missing_directory(tmp_path: Path) -> None:
    cfg = {**base_config(tmp_path), "log_file": str(tmp_path / "no-such-dir" / "run.log")}
    line = refusal(tmp_path, cfg)
    assert line.startswith("configuration error: ") and "log_file " in line and has_both_languages(line)
    assert f"create the directory {tmp_path / 'no-such-dir'} first" in line


def test_log_file_that_is_a_directory(tmp_path: Path) -> None:
    line = refusal(tmp_path, {**base_config(tmp_path), "log_file": str(tmp_path)})
    assert f"is a directory: name a file, e.g. {tmp_path / 'run.log'}" in line and has_both_languages(line)


def test_log_file_gets_the_log_private_and_rotated(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "run.log"
    log.parent.mkdir()
    cfg = {**base_config(tmp_path), "log_file": str(log), "log_file_max_mb": 1, "log_file_backups": 2}
    stderr = start_and_stop(tmp_path, cfg)
    written = log.read_text(encoding="utf-8")
    assert "callback server listening" in written and "callback server listening" in stderr
    assert LOG_LINE.match(written) and (log.stat().st_mode & 0o777) == 0o600
    # Rotation itself: the same handler app.py attaches, past its size.
    handler = open_log_file(tmp_path / "logs" / "small.log", max_mb=1, backups=2)
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "x" * 400_000, None, None)
    for _ in range(8):
        handler.emit(record)
    handler.close()
    rotated = sorted(p.name for p in log.parent.iterdir() if p.name.startswith("small.log"))
    assert rotated == ["small.log", "small.log.1", "small.log.2"]  # two backups kept, no more
    assert all((log.parent / name).stat().st_mode & 0o777 == 0o600 for name in rotated)


# --- a shared store that is not up yet ---------------------------------------------------------------


def test_redis_that_never_answers_is_one_line_and_exit_1_after_the_wait(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    cfg = {
        **base_config(tmp_path),
        "wechatcom_kf_redis_url": f"redis://:hunter2-redis@127.0.0.1:{port}/0",
        "wechatcom_kf_redis_start_wait_seconds": 1.5,
    }
    code, stderr = run_app(tmp_path, cfg)
    lines = [line for line in stderr.splitlines() if line.strip() and not LOG_LINE.match(line)]
    assert code == 1 and "Traceback" not in stderr, stderr  # a restart may help: not exit 2
    assert len(lines) == 1 and lines[0].startswith(f"cannot start: Redis 127.0.0.1:{port} "), stderr
    assert "did not answer within 2 s" in lines[0] and has_both_languages(lines[0])
    assert sum("does not answer yet" in line for line in stderr.splitlines()) == 1  # said once
    assert "hunter2-redis" not in stderr


def test_redis_that_comes_up_during_the_wait_is_used(tmp_path: Path) -> None:
    from tests.redis_helpers import RedisServer

    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis")
    cfg = {**base_config(tmp_path), "wechatcom_kf_redis_url": server.url}
    timer = threading.Timer(1.5, server.start)
    timer.start()
    try:
        stderr = start_and_stop(tmp_path, cfg)
    finally:
        timer.join()
        server.stop()
    assert "does not answer yet" in stderr and "cannot start" not in stderr


# --- settings ------------------------------------------------------------------------------------------


def test_aes_key_of_43_characters_outside_the_alphabet(tmp_path: Path) -> None:
    key = "abcdefghij-klmnopqrstuvwxyzABCDEFGHIJKLMNOP"
    assert len(key) == 43
    line = refusal(tmp_path, {**base_config(tmp_path), "wechatcom_kf_aes_key": key})
    assert "character 11 of wechatcom_kf_aes_key is not one of A-Z a-z 0-9 + /" in line
    assert key not in line and has_both_languages(line)


@pytest.mark.parametrize(
    ("key", "said"),
    [
        (VALID_AES_KEY[:42], "has 42 characters"),
        (VALID_AES_KEY + "\n", "has 44 characters (with whitespace around it)"),
    ],
)
def test_aes_key_of_the_wrong_length(tmp_path: Path, key: str, said: str) -> None:
    line = refusal(tmp_path, {**base_config(tmp_path), "wechatcom_kf_aes_key": key})
    assert f"wechatcom_kf_aes_key {said}, not exactly 43" in line


def test_missing_required_settings_stay_one_line(tmp_path: Path) -> None:
    cfg = {k: v for k, v in base_config(tmp_path).items() if k != "wechatcom_kf_token"}
    assert refusal(tmp_path, cfg) == "configuration error: missing required settings: wechatcom_kf_token"


# --- what is not a failure ----------------------------------------------------------------------------


def test_no_amr_ffmpeg_is_a_warning_and_the_app_starts(tmp_path: Path) -> None:
    hidden = tmp_path / "no-imageio-ffmpeg"
    hidden.mkdir()
    (hidden / "imageio_ffmpeg.py").write_text('raise ImportError("hidden by the test")\n')
    empty_path = tmp_path / "empty-bin"
    empty_path.mkdir()
    stderr = start_and_stop(
        tmp_path, base_config(tmp_path), {"PYTHONPATH": str(hidden), "PATH": str(empty_path)}
    )
    warnings = [line for line in stderr.splitlines() if " WARNING " in line and "ffmpeg" in line]
    assert len(warnings) == 1, stderr
    assert "Traceback" not in stderr


# --- the bind that fails after the check, and an upstream host --------------------------------------


def test_port_taken_after_the_check_is_still_one_line_and_exit_2(
    tmp_path: Path, busy_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from channel.wechatcom_kf import wechatcom_kf_channel as module

    config.load_config(
        str(write_config(tmp_path, {})),
        overrides={**base_config(tmp_path), "wechatcom_kf_port": busy_port},
        environ={},
    )
    monkeypatch.setattr(module, "check_bind", lambda host, port: None)  # taken between check and bind
    runtime = app.App()
    channel = module.WechatComKfChannel()
    channel.channel_type = "wechatcom_kf"
    runtime.channels.append(channel)
    runtime.check_channels()
    runtime.start()
    assert runtime.stop_requested.wait(10)
    runtime.shutdown(timeout=5.0)
    assert not runtime.crashed.is_set()
    assert (
        runtime.cannot_start is not None
        and f"wechatcom_kf_port {busy_port} is in use" in runtime.cannot_start
    )


def test_upstream_host_logs_one_error_line_without_traceback(
    emu: WeComEmulator, tmp_path: Path, busy_port: int
) -> None:
    host = launch(emu, tmp_path, "2.1", settings={"wechatcom_kf_port": busy_port}, wait=False)
    with host:
        lines = host.wait_output(lambda line: "cannot start" in line, 30.0)
        output = host.output()
    assert len(lines) == 1, output
    assert " ERROR " in lines[0] or "[ERROR]" in lines[0], lines[0]
    assert f"wechatcom_kf_port {busy_port} is in use by another process" in lines[0]
    assert "Traceback" not in output, output
