"""``crypto``: callback verify + decrypt per second on one core, in this process, through the channel's
own ``CallbackHandler.handle_post`` (signature check, AES decrypt, XML parse, ``schedule`` call).

Callbacks are encrypted beforehand by the emulator (not started: no network), so only the channel's
side is timed. Each round over them uses a fresh handler: a handler answers an envelope it has seen
with 200 and no pull (replay protection), which is a cheaper path than the one measured here.
"""

from __future__ import annotations

import time
from typing import Any

from bench.harness import Deadline, Options, rounded
from channel.wechatcom_kf.edge.callback import CallbackHandler
from sandbox.emulator import WeComEmulator

NAME = "crypto"
DISTINCT_CALLBACKS = 500
CHECK_EVERY = 50


def run(opts: Options, deadline: Deadline) -> dict[str, Any]:
    emu = WeComEmulator()  # never started: only its callback encryption is used
    kf = emu.default_kfid
    callbacks = [emu.encrypt_callback(kf) for _ in range(DISTINCT_CALLBACKS)]
    scheduled: list[int] = [0]

    def schedule(_open_kfid: str, _token: str) -> None:
        scheduled[0] += 1

    def fresh() -> CallbackHandler:
        return CallbackHandler(emu.callback_token, emu.aes_key, emu.corp_id, schedule)

    handler = fresh()
    budget = min(opts.crypto_seconds, deadline.remaining())
    ops = failures = 0
    cpu0, started = time.process_time(), time.perf_counter()
    end = started + budget
    while time.perf_counter() < end:
        if ops and ops % DISTINCT_CALLBACKS == 0:
            handler = fresh()
        for params, body in callbacks[(ops % DISTINCT_CALLBACKS) :][:CHECK_EVERY]:
            if handler.handle_post(params, body).status != 200:
                failures += 1
            ops += 1
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    return {
        "scenario": NAME,
        "via": "channel.wechatcom_kf.edge.callback.CallbackHandler.handle_post",
        "ops": ops,
        "failures": failures,
        "scheduled": scheduled[0],
        "seconds": rounded(elapsed),
        "ops_per_s": rounded(ops / elapsed, 1) if elapsed > 0 else None,
        "us_per_op": rounded(elapsed / ops * 1e6, 1) if ops else None,
        "cpu_s": rounded(cpu),
        "timed_out": False,
    }
