"""``restart``: seconds from process creation to the callback port open, the first callback answered
with HTTP 200, and the first reply sent. ``cold``: first start, no state (the default of skipping
history, except the message that woke us); ``warm``: a restart on the state left by the cold run, with a
message that arrived while the app was down.
"""

from __future__ import annotations

import http.client
import shutil
import time
from typing import Any

from bench.harness import (
    LOOPBACK,
    AppProcess,
    Deadline,
    Options,
    bench_app,
    post_callback,
    rounded,
    send_count,
)
from sandbox.emulator import WeComEmulator

NAME = "restart"
RETRY_PAUSE = 0.005
DEFAULT_HISTORY = {"wechatcom_kf_skip_history_on_first_start": True}


def _first_answers(
    emu: WeComEmulator, app: AppProcess, deadline: Deadline
) -> tuple[float | None, float | None]:
    """Post callbacks (one attempt each, short pause) until one is answered 200.

    Returns seconds since process creation of the first accepted connection and of the first 200.
    """
    kf = emu.default_kfid
    connected: float | None = None
    while not deadline.expired() and app.alive():
        params, body = emu.encrypt_callback(kf)
        conn = http.client.HTTPConnection(LOOPBACK, app.port, timeout=5)
        try:
            conn.connect()
            if connected is None:
                connected = time.monotonic() - app.started_at
            if post_callback(conn, params, body) == 200:
                return connected, time.monotonic() - app.started_at
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        time.sleep(RETRY_PAUSE)
    return connected, None


def _measure(emu: WeComEmulator, app: AppProcess, deadline: Deadline, sends_before: int) -> dict[str, Any]:
    app.start()
    port_open, first_200 = _first_answers(emu, app, deadline)
    got = emu.wait_until(lambda: send_count(emu) > sends_before, timeout=deadline.remaining())
    first_reply = (emu.sends[sends_before].time - app.started_wall) if got else None
    return {
        "port_open_s": rounded(port_open),
        "first_callback_200_s": rounded(first_200),
        "first_reply_s": rounded(first_reply),
        "timed_out": first_200 is None or not got,
    }


def run(opts: Options, deadline: Deadline) -> dict[str, Any]:
    result: dict[str, Any] = {"scenario": NAME}
    emu = WeComEmulator().start()
    cold = warm = None
    try:
        kf = emu.default_kfid
        user = emu.add_customer("重启")
        cold = bench_app(emu, DEFAULT_HISTORY, label=f"{NAME}-cold", profile_dir=opts.profile_dir)
        emu.customer_text(kf, user, "第一条", notify=False)
        result["cold"] = _measure(emu, cold, deadline, 0)
        cold.stop()
        emu.customer_text(kf, user, "停机时的消息", notify=False)
        warm = bench_app(
            emu, DEFAULT_HISTORY, label=f"{NAME}-warm", workdir=cold.workdir, profile_dir=opts.profile_dir
        )
        result["warm"] = _measure(emu, warm, deadline, send_count(emu))
    finally:
        if warm is not None:
            warm.stop()
        if cold is not None:
            cold.stop()
            shutil.rmtree(cold.workdir, ignore_errors=True)
        emu.stop()
    result["timed_out"] = any(result.get(k, {"timed_out": True})["timed_out"] for k in ("cold", "warm"))
    return result
