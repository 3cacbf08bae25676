"""``ack``: callback HTTP latency with many callbacks in flight while kf/sync_msg is slow.

Invariant 1: the callback handler schedules the pull and answers; it must not wait for sync_msg, which
the emulator slows to ``ack_sync_latency`` seconds. Callbacks are encrypted before the clock starts and
posted from a separate process (bench/ack_client.py), so the client's own cost is not measured.
"""

from __future__ import annotations

import http.client
import time
from typing import Any

from bench.ack_client import post_concurrently
from bench.harness import LOOPBACK, Deadline, Options, percentile, post_callback, rounded, running_app

NAME = "ack"
WARMUP_CALLBACKS = 5
SERIAL_CALLBACKS = 100  # one at a time: the service time of one callback, without queueing


def _worker(
    port: int,
    jobs: list[tuple[dict[str, str], bytes]],
    deadline: Deadline,
    latencies: list[float],
    statuses: list[int],
) -> None:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        for params, body in jobs:
            if deadline.expired():
                return
            started = time.perf_counter()
            try:
                status = post_callback(conn, params, body)
            except (OSError, http.client.HTTPException):
                status = 0
                conn.close()
                conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
            latencies.append(time.perf_counter() - started)  # list.append is atomic
            statuses.append(status)
    finally:
        conn.close()


def run(opts: Options, deadline: Deadline) -> dict[str, Any]:
    total, in_flight = opts.ack_callbacks, opts.ack_in_flight
    result: dict[str, Any] = {
        "scenario": NAME,
        "callbacks": total,
        "in_flight": in_flight,
        "sync_latency_s": opts.ack_sync_latency,
    }
    with running_app(opts, deadline, label=NAME) as (emu, app):
        kf = emu.default_kfid
        user = emu.add_customer("ack")
        emu.customer_text(kf, user, "ping", notify=False)
        emu.faults.latency = {"kf/sync_msg": opts.ack_sync_latency}
        for _ in range(WARMUP_CALLBACKS):
            emu.fire_callback(kf, wait=True)
        serial_lat: list[float] = []
        _worker(
            app.port, [emu.encrypt_callback(kf) for _ in range(SERIAL_CALLBACKS)], deadline, serial_lat, []
        )
        callbacks = [emu.encrypt_callback(kf) for _ in range(total)]
        cpu0, started = app.cpu_seconds(), time.monotonic()
        measured = post_concurrently(app.port, callbacks, in_flight, deadline.remaining())
        elapsed = time.monotonic() - started
        result["app_cpu_s"] = rounded(app.cpu_seconds() - cpu0)
        emu.faults.latency = {}
    ms = [latency * 1000.0 for latency, _ in measured]
    statuses = [status for _, status in measured]
    result.update(
        {
            "answered": len(ms),
            "non_200": sum(1 for s in statuses if s != 200),
            "p50_ms": rounded(percentile(ms, 50), 2),
            "p99_ms": rounded(percentile(ms, 99), 2),
            "max_ms": rounded(max(ms), 2) if ms else None,
            "elapsed_s": rounded(elapsed),
            "callbacks_per_s": rounded(len(ms) / elapsed, 1) if elapsed > 0 else None,
            "serial_p50_ms": rounded(percentile([x * 1000.0 for x in serial_lat], 50), 2),
            "serial_p99_ms": rounded(percentile([x * 1000.0 for x in serial_lat], 99), 2),
            "timed_out": len(ms) < total,
        }
    )
    return result
