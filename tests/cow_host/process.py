"""``python app.py`` of a fake CoW tree in a subprocess: a clean environment, output in one file, every
wait bounded, stopped by its PID (SIGTERM, then SIGKILL)."""

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
from typing import Any

from sandbox.harness import LOOPBACK, clean_environ, wait_until

_OUR_PREFIXES = ("WECHATCOM_", "WECHAT_KF_", "COW_")


def host_environ(extra: dict[str, str], home: Path) -> dict[str, str]:
    """This environment without anything a host or the channel would read as settings, plus ``extra``;
    HOME is ``home`` (upstream's ``wechat_kf`` reads ``~/.wechat_kf_cursors.json``)."""
    env = clean_environ(("PYTHONPATH", "PYTHONHOME"))
    env = {k: v for k, v in env.items() if not k.startswith(_OUR_PREFIXES)}
    home.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


class HostProcess:
    def __init__(self, tree: Path, env: dict[str, str] | None = None, *, port: int | None = None) -> None:
        self.tree = tree
        self.port = port  # the channel's callback port, when one is expected
        self.log_path = tree / "host-output.log"
        self.events_path = tree / "host_events.jsonl"
        self._env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.killed = False  # SIGTERM was not enough

    @property
    def callback_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/wxkf/"

    def start(self) -> HostProcess:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "app.py"],
                cwd=self.tree,
                env=host_environ(self._env, self.tree / "home"),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_port(self, timeout: float = 30.0) -> None:
        """Until the callback port accepts a connection; raises when the host exits or time is up."""
        if self.port is None:
            raise RuntimeError("no callback port expected")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # bounded
            if not self.alive():
                raise RuntimeError(f"the fake CoW host exited early:\n{self.tail()}")
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"callback port {self.port} not open within {timeout:.0f} s:\n{self.tail()}")

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def wait_output(self, predicate: Callable[[str], bool], timeout: float) -> list[str]:
        """Output lines for which ``predicate`` holds, once there is one (or the host exited / time is up)."""

        def matching() -> list[str]:
            return [line for line in self.output().splitlines() if predicate(line)]

        wait_until(lambda: matching() or not self.alive(), timeout, 0.05)
        return matching()

    def events(self, kind: str | None = None, session: str | None = None) -> list[dict[str, Any]]:
        """What the host recorded (``skeleton/host_probe.py``), oldest first."""
        if not self.events_path.exists():
            return []
        rows = [
            json.loads(line) for line in self.events_path.read_text(encoding="utf-8").splitlines() if line
        ]
        return [
            row
            for row in rows
            if (kind is None or row["kind"] == kind) and (session is None or row.get("session") == session)
        ]

    def wait_events(
        self, kind: str, count: int, timeout: float, session: str | None = None
    ) -> list[dict[str, Any]]:
        """At least ``count`` events of ``kind`` (the list as it is when the time is up, otherwise)."""
        wait_until(lambda: len(self.events(kind, session)) >= count or not self.alive(), timeout, 0.05)
        return self.events(kind, session)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait, then SIGKILL; only this process, by its PID."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        return proc.returncode

    def __enter__(self) -> HostProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
