"""Driving the real ``app.py`` against the emulator: shared by the end-to-end tests and ``python -m bench``.

``AppProcess`` runs ``python app.py --config <workdir>/config.json`` pointed at an emulator (its
credentials and API base, a free loopback port, a state directory in ``workdir``), with its output in
one log file per start, and stops it by its PID (SIGTERM, then SIGKILL after a bounded wait; or kill -9
on purpose). ``cpu_seconds``/``rss_mb`` read /proc. ``wait_until`` is the one bounded poll for
conditions the emulator's own condition variable cannot wait for.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sandbox.emulator import WeComEmulator

REPO_ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


def free_port() -> int:
    """A currently free loopback TCP port (the app binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.02) -> T:
    """Poll ``predicate`` until it is truthy or ``timeout`` passes; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of ``pid`` (all its threads) from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name may contain spaces and parentheses: split after the last ")".
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (VmRSS of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def clean_environ(drop: tuple[str, ...] = ()) -> dict[str, str]:
    """This process's environment minus what the app would read as settings (its config is the file)."""
    import config

    names: set[str] = set(drop)
    for spec in config.all_settings():
        if spec.env:
            names.add(spec.env)
        names.update(alias.upper() for alias in spec.aliases)
    env = {k: v for k, v in os.environ.items() if k not in names}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class AppProcess:
    """One ``app.py`` subprocess for ``emu``; ``values`` are config keys over the emulator's."""

    def __init__(
        self,
        emu: WeComEmulator,
        values: dict[str, Any],
        workdir: Path,
        *,
        label: str = "app",
        command: list[str] | None = None,
        drop_env: tuple[str, ...] = (),
    ) -> None:
        self.emu = emu
        self.label = label
        self.workdir = workdir
        self.port = free_port()
        self.state_dir = workdir / "state"
        self.config_path = workdir / "config.json"
        self.values = dict(values)
        self.logs: list[Path] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0  # time.monotonic() just before the process was created
        self.started_wall = 0.0  # time.time() of the same moment
        self._command = command
        self._drop_env = drop_env

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("app not started")
        return self.proc.pid

    @property
    def callback_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/wxkf/"

    def write_config(self) -> None:
        values = {
            **self.emu.channel_config(),
            "wechatcom_kf_host": LOOPBACK,
            "wechatcom_kf_cursor_dir": str(self.state_dir),
            **self.values,
            "wechatcom_kf_port": self.port,
        }
        self.config_path.write_text(json.dumps(values, ensure_ascii=False, indent=2), encoding="utf-8")

    def start(self) -> AppProcess:
        """Start the process (again, after a stop or a kill: same config, same port, a new log)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        self.emu.callback_url = self.callback_url
        log = self.workdir / f"{self.label}-{len(self.logs)}.log"
        self.logs.append(log)
        command = self._command or [sys.executable, "app.py"]
        with open(log, "ab") as out:
            self.started_at, self.started_wall = time.monotonic(), time.time()
            self.proc = subprocess.Popen(
                [*command, "--config", str(self.config_path)],
                cwd=REPO_ROOT,
                env=clean_environ(self._drop_env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float, *, verified: bool = False) -> float:
        """Wait until the callback port accepts connections (``verified``: until a URL verification
        is answered 200); seconds since start. Raises when the app exits or the time is up."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:  # bounded
            if not self.alive():
                raise RuntimeError(f"{self.label} exited early:\n{self.log_tail()}")
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=0.5):
                    if not verified or self.emu.verify_url(self.callback_url)[0] == 200:
                        return time.monotonic() - self.started_at
            except OSError:
                pass
            time.sleep(0.01)
        raise TimeoutError(f"{self.label} did not open port {self.port} within {timeout:.0f} s")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def log_text(self) -> str:
        return "\n".join(log.read_text(errors="replace") for log in self.logs if log.exists())

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def kill(self) -> None:
        """kill -9, as a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait, then SIGKILL; only this process, by its PID. Returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return proc.returncode
