"""``memory``: RSS of the app before and after many messages (echo bot), then after an idle wait.

The session memory expiry (``expires_in_seconds``) is shortened for the run. What the channel keeps
per message or customer by design is NOT configurable and stays: done msgids for 3 days (dedup, WeCom's
sync window) and the per-customer send ledger for 48 h (the send window). So "after idle" is expected
to stay near "after", not to fall back to the start; CPython also seldom returns freed arenas to the OS.
"""

from __future__ import annotations

import math
import time
from typing import Any

from bench.harness import Deadline, Options, rounded, running_app
from bench.load import drive

NAME = "memory"
WARMUP_CUSTOMERS = 200
WARMUP_PER_USER = 5
RETAINED_BY_DESIGN = ["done msgids: 3 days (dedup, 8-byte digests)", "per-customer send ledger: 48 h"]


def run(opts: Options, deadline: Deadline) -> dict[str, Any]:
    customers = max(1, min(opts.memory_customers, opts.memory_messages))
    per_user = max(1, math.ceil(opts.memory_messages / customers))
    messages = customers * per_user
    expiry = opts.memory_expiry_seconds
    result: dict[str, Any] = {
        "scenario": NAME,
        "messages": messages,
        "customers": customers,
        "expiry_settings": {"expires_in_seconds": expiry},
        "retained_by_design": RETAINED_BY_DESIGN,
    }
    overrides = {"expires_in_seconds": expiry}
    with running_app(opts, deadline, overrides, label=NAME) as (emu, app):
        time.sleep(min(0.5, deadline.remaining()))
        result["rss_start_mb"] = rounded(app.rss_mb(), 1)
        warm_users = [emu.add_customer(f"预热{i}") for i in range(min(WARMUP_CUSTOMERS, customers))]
        warm = drive(emu, warm_users, WARMUP_PER_USER if not opts.smoke else 1, deadline)
        result["warmup_messages"] = warm.injected
        result["rss_before_mb"] = before = rounded(app.rss_mb(), 1)
        users = [emu.add_customer(f"客户{i}") for i in range(customers)]
        cpu0 = app.cpu_seconds()
        load = drive(emu, users, per_user, deadline)
        elapsed = (load.done_at or load.last_inject) - load.first_inject
        result["rss_after_mb"] = after = rounded(app.rss_mb(), 1)
        idle = min(max(2 * expiry + 1.0, 3.0), deadline.remaining())
        time.sleep(idle)
        result["idle_wait_s"] = rounded(idle, 1)
        result["rss_after_idle_mb"] = rounded(app.rss_mb(), 1)
        result["app_cpu_s"] = rounded(app.cpu_seconds() - cpu0)
    growth = (after or 0.0) - (before or 0.0)
    result.update(
        {
            "replies": load.replies,
            "elapsed_s": rounded(elapsed),
            "replies_per_s": rounded(load.replies / elapsed, 1) if elapsed > 0 else None,
            "growth_mb": rounded(growth, 1),
            "growth_mb_per_100k": rounded(growth / messages * 100000, 1),
            "timed_out": load.timed_out or warm.timed_out,
        }
    )
    return result
