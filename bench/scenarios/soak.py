"""``soak``: a day of traffic in one run. The echo bot answers ``soak_messages`` texts from
``soak_customers`` customers (each writes again only once answered, round after round); RSS, replies per
second and app CPU per message are sampled every ``soak_every`` messages, then RSS once more after an
idle wait longer than the session expiry (``expires_in_seconds``, shortened for the run).

Invariant 9 says memory stays flat over a day: what must not grow is the slope, and the rate must not
fall as the retained state (done msgids for the 3-day window, per-customer ledgers) grows. ``--plot``
draws RSS and rate against messages into a PNG.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from bench.harness import Deadline, Options, rounded, running_app
from bench.load import drive
from bench.plot import draw_soak
from sandbox.emulator import WeComEmulator

NAME = "soak"
logger = logging.getLogger(__name__)


def _segment(emu: WeComEmulator, users: list[str], offset: int, count: int, deadline: Deadline) -> int:
    """``count`` messages from the next customers in turn, starting at ``offset`` in the round; each
    customer writes once per round and every round is answered before the next starts. Replies."""
    replies = 0
    while count > 0 and not deadline.expired():
        start = offset % len(users)
        chunk = users[start : start + count]
        load = drive(emu, chunk, 1, deadline)
        replies += load.replies
        offset += len(chunk)
        count -= len(chunk)
        if load.timed_out:
            break
    return replies


def _sample(app: Any, messages: int, replies: int, seconds: float, cpu: float) -> dict[str, Any]:
    return {
        "messages": messages,
        "rss_mb": rounded(app.rss_mb(), 1),
        "replies_per_s": rounded(replies / seconds, 1) if seconds > 0 else None,
        "cpu_ms_per_msg": rounded(cpu / max(1, replies) * 1000, 2),
    }


def _figures(samples: list[dict[str, Any]], every: int) -> dict[str, Any]:
    """Growth per ``every`` messages after the first segment (start-up allocations excluded) and the
    last segment's rate against the first's."""
    out: dict[str, Any] = {}
    if len(samples) >= 2:
        out["rss_growth_mb"] = rounded(samples[-1]["rss_mb"] - samples[0]["rss_mb"], 1)
    if len(samples) >= 3:
        span = samples[-1]["messages"] - samples[1]["messages"]
        growth = samples[-1]["rss_mb"] - samples[1]["rss_mb"]
        out["growth_mb_per_100k"] = rounded(growth / max(1, span) * 100000, 1)
        first, last = samples[1].get("replies_per_s"), samples[-1].get("replies_per_s")
        if first and last:
            out["rate_last_vs_first"] = rounded(last / first, 3)
    if len(samples) >= 4:  # the first segment also meets every customer once (two more calls each)
        second, last = samples[2].get("replies_per_s"), samples[-1].get("replies_per_s")
        if second and last:
            out["rate_last_vs_second"] = rounded(last / second, 3)
    out["segment"] = every
    return out


def run(opts: Options, deadline: Deadline) -> dict[str, Any]:
    customers = max(1, min(opts.soak_customers, opts.soak_messages))
    every = max(1, min(opts.soak_every, opts.soak_messages))
    total = opts.soak_messages
    expiry = opts.memory_expiry_seconds
    result: dict[str, Any] = {"scenario": NAME, "messages": total, "customers": customers}
    overrides = {"expires_in_seconds": expiry}
    samples: list[dict[str, Any]] = []
    with running_app(opts, deadline, overrides, label=NAME) as (emu, app):
        time.sleep(min(0.5, deadline.remaining()))
        samples.append(_sample(app, 0, 0, 0.0, 0.0))
        users = [emu.add_customer(f"客户{i}") for i in range(customers)]
        done = replies = 0
        cpu_start = app.cpu_seconds()
        while done < total and not deadline.expired():
            count = min(every, total - done)
            started, cpu0 = time.monotonic(), app.cpu_seconds()
            got = _segment(emu, users, done, count, deadline)
            done += count
            replies += got
            samples.append(_sample(app, done, got, time.monotonic() - started, app.cpu_seconds() - cpu0))
            logger.info("soak: %s", samples[-1])
        result["app_cpu_s"] = rounded(app.cpu_seconds() - cpu_start)
        idle = min(max(2 * expiry + 1.0, 3.0), deadline.remaining())
        time.sleep(idle)
        result["idle_wait_s"] = rounded(idle, 1)
        result["rss_after_idle_mb"] = rounded(app.rss_mb(), 1)
    result.update(
        {
            "replies": replies,
            "rss_start_mb": samples[0]["rss_mb"],
            "rss_end_mb": samples[-1]["rss_mb"],
            "samples": samples,
            **_figures(samples, every),
            "timed_out": replies < done or done < total,
        }
    )
    if opts.plot_path:
        title = f"soak: {done:,} messages from {customers:,} customers"
        result["plot"] = str(draw_soak(samples, opts.plot_path, title))
    return result
