"""Run the real ``app.py`` in a subprocess against an emulator living in the bench process.

The app gets a temporary config.json (credentials and API base of the emulator, a free loopback port,
a temporary state directory), its output goes to a log file in the same temporary directory, and it
is stopped by PID (SIGTERM, then SIGKILL after a bounded wait). CPU time and RSS come from /proc.

Set ``BENCH_PROFILE`` to a directory (or pass ``--profile DIR``) to run every app under cProfile
(all threads, see ``bench/profile_app.py``); one ``<label>.prof`` file per app process.
"""

from __future__ import annotations

import gc
import http.client
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.emulator import WeComEmulator
from sandbox.harness import LOOPBACK, AppProcess, cpu_seconds, free_port, rss_mb

__all__ = ["LOOPBACK", "AppProcess", "cpu_seconds", "free_port", "rss_mb"]

logger = logging.getLogger(__name__)

PROFILE_ENV = "BENCH_PROFILE"
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
    # The scenarios count one reply per message; the flood guard would merge a customer's burst.
    "wechatcom_kf_flood_max_messages": 0,
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
    cow_customers: int = 200
    cow_versions: tuple[str, ...] = ("1.7", "2.0", "2.1")
    soak_messages: int = 1_000_000
    soak_customers: int = 50_000
    soak_every: int = 100_000  # a sample (RSS, rate) every this many messages
    soak_duration: float = 3 * 3600.0  # the soak's own cap: a million messages take most of an hour
    plot_path: str | None = None  # soak: draw RSS and rate against messages into this PNG
    store_ids: int = 1_000_000  # compaction: finished msgids in the store
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
            cow_customers=10,
            cow_versions=("2.1",),
            soak_messages=1000,
            soak_customers=100,
            soak_every=250,
            soak_duration=30.0,
            store_ids=20_000,
            duration=30.0,
        )


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def self_cpu_seconds() -> float:
    """CPU seconds of the bench process (emulator, fake bot and load generators)."""
    return cpu_seconds(os.getpid())


def peak_mb(work: Callable[[], object]) -> float:
    """The peak of Python allocations while ``work`` runs, in MB (tracemalloc: exact, not timed)."""
    gc.collect()
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def retained_mb(build: Callable[[], object]) -> float:
    """What ``build``'s result still holds once built, in MB (tracemalloc: exact, not timed)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = build()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del kept
    return held / 1e6


def bench_app(
    emu: WeComEmulator,
    overrides: dict[str, Any] | None = None,
    *,
    label: str,
    workdir: Path | None = None,
    profile_dir: str | None = None,
) -> AppProcess:
    """An app (not started) with the bench's base settings, in ``workdir`` (a new temp dir by default);
    under cProfile when ``profile_dir`` is set."""
    command = None
    if profile_dir:
        out = Path(profile_dir).resolve() / f"{label}.prof"
        out.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "bench.profile_app", str(out)]
    return AppProcess(
        emu,
        {**BASE_CONFIG, **(overrides or {})},
        workdir or Path(tempfile.mkdtemp(prefix="bench-")),
        label=label,
        command=command,
        drop_env=(PROFILE_ENV,),
    )


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
    app = bench_app(emulator, overrides, label=label, profile_dir=opts.profile_dir)
    try:
        app.start()
        app.wait_ready(min(60.0, max(1.0, deadline.remaining())))
        yield emulator, app
    finally:
        app.stop(STOP_WAIT_SECONDS)
        shutil.rmtree(app.workdir, ignore_errors=True)
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
