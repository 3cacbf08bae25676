"""``cowhost``: the burst inside fake CoW hosts (1.7, 2.0, CowAgent 2.1) next to this runtime.

N customers write once each; the bot answers after the bot latency. Per host version: the channel's
own workers (``wechatcom_kf_own_dispatch``, the default) and CoW's polled 8-thread queue; and this
runtime on the same N and latency. ``vs_runtime`` = time in the host / time in this runtime (the
drop-in should stay within 2). The fake hosts are the test fixtures of ``tests/cow_host/``: they
reproduce upstream's documented dispatch (one consumer polling every 0.2 s, 8 handler threads).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import Deadline, Options, rounded, running_app, send_count, wait_for
from sandbox.fake_openai import FakeOpenAIServer

NAME = "cowhost"


def _runtime_seconds(opts: Options, deadline: Deadline, n: int) -> float | None:
    bot = FakeOpenAIServer(latency=opts.bot_latency)
    url = bot.start()
    overrides = {"bot_type": "openai", "open_ai_api_key": "sk-bench", "open_ai_api_base": url}
    try:
        with running_app(opts, deadline, overrides, label=f"{NAME}-runtime") as (emu, _app):
            kf = emu.default_kfid
            users = [emu.add_customer(f"客户{i}") for i in range(n)]
            started = time.monotonic()
            for i, user in enumerate(users):
                emu.customer_text(kf, user, f"问题{i}")
            done = wait_for(emu, lambda: send_count(emu) >= n, deadline)
            return time.monotonic() - started if done else None
    finally:
        bot.stop()


def _host_seconds(version: str, n: int, latency: float, own: bool) -> float:
    from tests.cow_host.burst import run_burst  # test fixtures; imported only when this scenario runs

    with tempfile.TemporaryDirectory(prefix="bench-cowhost-") as tmp:
        settings = None if own else {"wechatcom_kf_own_dispatch": False}
        return run_burst(Path(tmp), version, n, latency, settings)


def run(opts: Options, deadline: Deadline) -> dict[str, Any]:
    n = opts.cow_customers
    ours = _runtime_seconds(opts, deadline, n)
    hosts: list[dict[str, Any]] = []
    for version in opts.cow_versions:
        if deadline.expired():
            break
        entry: dict[str, Any] = {"version": version}
        for label, own in (("own_workers_s", True), ("cow_queue_s", False)):
            entry[label] = rounded(_host_seconds(version, n, opts.bot_latency, own))
        entry["vs_runtime"] = rounded(entry["own_workers_s"] / ours, 2) if ours else None
        hosts.append(entry)
    return {
        "scenario": NAME,
        "customers": n,
        "bot_latency_s": opts.bot_latency,
        "runtime_s": rounded(ours),
        "hosts": hosts,
        "timed_out": ours is None or len(hosts) < len(opts.cow_versions),
    }
