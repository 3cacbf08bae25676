"""``throughput``: the echo bot, many customers each sending several texts; replies per second and the
app's CPU seconds per 1,000 messages (from /proc, all threads of the app process)."""

from __future__ import annotations

import math
from typing import Any

from bench.harness import Deadline, Options, rounded, running_app, self_cpu_seconds
from bench.load import drive

NAME = "throughput"


def run(opts: Options, deadline: Deadline) -> dict[str, Any]:
    customers = max(1, min(opts.throughput_customers, opts.messages))
    per_user = max(1, math.ceil(opts.messages / customers))
    result: dict[str, Any] = {"scenario": NAME, "messages": customers * per_user, "customers": customers}
    with running_app(opts, deadline, label=NAME) as (emu, app):
        users = [emu.add_customer(f"客户{i}") for i in range(customers)]
        cpu0, bench_cpu0 = app.cpu_seconds(), self_cpu_seconds()
        load = drive(emu, users, per_user, deadline)
        app_cpu = app.cpu_seconds() - cpu0
        bench_cpu = self_cpu_seconds() - bench_cpu0
        result["rss_mb"] = rounded(app.rss_mb(), 1)
    end = load.done_at or load.last_inject
    elapsed = max(1e-9, end - load.first_inject)
    result.update(
        {
            "replies": load.replies,
            "callbacks": load.callbacks,
            "elapsed_s": rounded(elapsed),
            "replies_per_s": rounded(load.replies / elapsed, 1),
            "app_cpu_s": rounded(app_cpu),
            "cpu_s_per_1000": rounded(app_cpu / max(1, load.replies) * 1000),
            "bench_cpu_s": rounded(bench_cpu),
            "timed_out": load.timed_out,
        }
    )
    return result
