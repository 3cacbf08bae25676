"""Run the real ``app.py`` in a subprocess against an emulator living in the bench process.

The app gets a temporary config.json (credentials and API base of the emulator, a free loopback port,
a temporary state directory), its output goes to a log file in the same temporary directory, and it
is stopped by PID (SIGTERM, then SIGKILL after a bounded wait). CPU time and RSS come from /proc.

Set ``BENCH_PROFILE`` to a directory (or pass ``--profile DIR``) to run every app under cProfile
(all threads, see ``bench/profile_app.py``); one ``<label>.prof`` file per app process.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.emulator import WeComEmulator

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
PROFILE_ENV = "BENCH_PROFILE"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STOP_WAIT_SECONDS = 20.0

# Settings every benchmarked app gets; scenarios add or override what they exercise.
BASE_CONFIG: dict[str, Any] = {
    "bot_type": "echo",
    "debug": False,
    "wechatcom_kf_host": LOOPBACK,
    "wechatcom_kf_skip_history_on_first_start": False,
    "wechatcom_kf_merge_window_seconds": 0.3,
    "wechatcom_kf_request_timeout": 10.0,
    "shutdown_timeout_seconds": 5.0,
}


class Deadline:
    """A hard time budget for one scenario."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()
        self.end = self.started + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass
class Options:
    """Sizes and limits of one bench run (``--smoke`` picks tiny ones)."""

    smoke: bool = False
    customers: int = 500
    bot_latency: float = 1.0
    concurrencies: tuple[int, ...] = (64, 256)
    ack_callbacks: int = 1000
    ack_in_flight: int = 50
    ack_sync_latency: float = 0.1
    messages: int = 20000
    throughput_customers: int = 2000
    memory_messages: int = 100000
    memory_customers: int = 10000
    memory_expiry_seconds: int = 5  # expires_in_seconds is an int setting
    crypto_seconds: float = 3.0
    duration: float = 600.0
    profile_dir: str | None = field(default_factory=lambda: os.environ.get(PROFILE_ENV) or None)

    @classmethod
    def smoke_sizes(cls) -> Options:
        return cls(
            smoke=True,
            customers=20,
            bot_latency=0.2,
            ack_callbacks=100,
            ack_in_flight=20,
            messages=500,
            throughput_customers=50,
            memory_messages=1000,
            memory_customers=100,
            memory_expiry_seconds=1,
            crypto_seconds=0.3,
            duration=30.0,
        )


def free_port() -> int:
    """A currently free loopback TCP port (the app binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


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


def self_cpu_seconds() -> float:
    """CPU seconds of the bench process (emulator, fake bot and load generators)."""
    return cpu_seconds(os.getpid())


def _clean_environ() -> dict[str, str]:
    """The bench's environment minus variables the app would read as settings (config comes from the file)."""
    import config

    names: set[str] = set()
    for spec in config.all_settings():
        if spec.env:
            names.add(spec.env)
        names.update(alias.upper() for alias in spec.aliases)
    env = {k: v for k, v in os.environ.items() if k not in names and k != PROFILE_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class AppProcess:
    """One ``python app.py --config <tmp>/config.json`` subprocess pointed at ``emu``."""

    def __init__(
        self,
        emu: WeComEmulator,
        overrides: dict[str, Any] | None = None,
        *,
        label: str = "app",
        workdir: Path | None = None,
        profile_dir: str | None = None,
    ) -> None:
        self.emu = emu
        self.label = label
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="bench-"))
        self.port = free_port()
        self.state_dir = self.workdir / "state"
        self.config_path = self.workdir / "config.json"
        self.log_path = self.workdir / f"{label}.log"
        self.profile_dir = profile_dir
        self.overrides = dict(overrides or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0  # time.monotonic() just before the process was created
        self.started_wall = 0.0  # time.time() of the same moment

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
            **BASE_CONFIG,
            "wechatcom_kf_port": self.port,
            "wechatcom_kf_cursor_dir": str(self.state_dir),
            **self.overrides,
        }
        self.config_path.write_text(json.dumps(values, ensure_ascii=False, indent=2), encoding="utf-8")

    def command(self) -> list[str]:
        if self.profile_dir:
            out = Path(self.profile_dir).resolve() / f"{self.label}.prof"
            out.parent.mkdir(parents=True, exist_ok=True)
            return [sys.executable, "-m", "bench.profile_app", str(out), "--config", str(self.config_path)]
        return [sys.executable, "app.py", "--config", str(self.config_path)]

    def start(self) -> AppProcess:
        """Start the process (does not wait for the port; see ``wait_ready``)."""
        self.write_config()
        self.emu.callback_url = self.callback_url
        with open(self.log_path, "ab") as log:
            self.started_at, self.started_wall = time.monotonic(), time.time()
            self.proc = subprocess.Popen(
                self.command(),
                cwd=REPO_ROOT,
                env=_clean_environ(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        logger.info("%s started (pid %s, port %s)", self.label, self.pid, self.port)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float) -> float:
        """Wait until the callback port accepts connections; seconds since start. Raises on exit/timeout."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self.alive():
                raise RuntimeError(f"{self.label} exited early:\n{self.log_tail()}")
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=0.5):
                    return time.monotonic() - self.started_at
            except OSError:
                time.sleep(0.01)
        raise TimeoutError(f"{self.label} did not open port {self.port} within {timeout:.0f} s")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = STOP_WAIT_SECONDS) -> int | None:
        """SIGTERM, wait, then SIGKILL; only this process, by its PID. Returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within %.0f s; killing pid %s", self.label, timeout, proc.pid)
                proc.kill()
                proc.wait(5)
        return proc.returncode

    def cleanup(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


@contextmanager
def running_app(
    opts: Options,
    deadline: Deadline,
    overrides: dict[str, Any] | None = None,
    *,
    label: str,
    emu: WeComEmulator | None = None,
) -> Iterator[tuple[WeComEmulator, AppProcess]]:
    """An emulator (started here unless given) and a ready app; both stopped on exit."""
    own_emu = emu is None
    emulator = emu or WeComEmulator().start()
    app = AppProcess(emulator, overrides, label=label, profile_dir=opts.profile_dir)
    try:
        app.start()
        app.wait_ready(min(60.0, max(1.0, deadline.remaining())))
        yield emulator, app
    finally:
        app.cleanup()
        if own_emu:
            emulator.stop()


def wait_for(
    emu: WeComEmulator, predicate: Callable[[], bool], deadline: Deadline, cap: float | None = None
) -> bool:
    """Wait on the emulator's state condition (no polling) until ``predicate()`` or the deadline."""
    timeout = deadline.remaining() if cap is None else min(cap, deadline.remaining())
    return bool(emu.wait_until(predicate, timeout=timeout))


def send_count(emu: WeComEmulator) -> int:
    """Successful sends so far (O(1); read under the emulator's lock by ``wait_until``)."""
    return len(emu.state.sends)


def post_callback(conn: http.client.HTTPConnection, params: dict[str, str], body: bytes) -> int:
    """POST one callback on a keep-alive connection; the HTTP status."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    conn.request("POST", f"/wxkf/?{query}", body=body, headers={"Content-Type": "text/xml"})
    resp = conn.getresponse()
    resp.read()
    return int(resp.status)


def reply_stats(emu: WeComEmulator, msgids: Sequence[str]) -> dict[str, int]:
    """answered / missing / duplicates over ``msgids`` from the emulator's record of sends.

    A send's ``reply_to`` is the customer's latest msgid at send time, so this is exact only when each
    customer has one message (the burst scenario). More than one successful send per message is a
    duplicate (every benchmarked answer is one short text part); a resend with the same msgid is refused
    by the emulator ("msgid exists") and counted as ``refused_resends``.
    """
    wanted = set(msgids)
    per_msg: dict[str, int] = {}
    for sent in emu.sends:
        if sent.reply_to in wanted:
            per_msg[sent.reply_to] = per_msg.get(sent.reply_to, 0) + 1
    refused = sum(1 for r in emu.rejections if r.api.endswith("send_msg") and "exist" in r.errmsg)
    return {
        "answered": len(per_msg),
        "missing": len(wanted) - len(per_msg),
        "duplicates": sum(n - 1 for n in per_msg.values()),
        "refused_resends": refused,
    }
