"""``burst``: N customers, one message each, all behind ONE callback; an OpenAI-compatible bot with a
fixed latency. Run at the default dispatcher concurrency and at 256; both runs go into one JSON line
(``runs``) so the output stays one line per scenario.

ideal = ceil(N / concurrency) x bot latency: the time the dispatcher needs if nothing else costs
anything; ratio = time to last reply / ideal (1.0 is perfect).
"""

from __future__ import annotations

import math
import time
from typing import Any

from bench.harness import (
    Deadline,
    Options,
    percentile,
    reply_stats,
    rounded,
    running_app,
    send_count,
    wait_for,
)
from sandbox.fake_openai import FakeOpenAIServer

NAME = "burst"
SETTLE_SECONDS = 0.5  # after the last reply, wait this long for a (wrong) duplicate to show up


def _one_run(opts: Options, deadline: Deadline, concurrency: int, bot_url: str) -> dict[str, Any]:
    n = opts.customers
    overrides = {
        "bot_type": "openai",
        "open_ai_api_key": "sk-bench",
        "open_ai_api_base": bot_url,
        "max_concurrent_sessions": concurrency,
        "request_timeout": max(30.0, opts.bot_latency * 10),
    }
    run: dict[str, Any] = {"concurrency": concurrency}
    with running_app(opts, deadline, overrides, label=f"{NAME}-{concurrency}") as (emu, app):
        kf = emu.default_kfid
        users = [emu.add_customer(f"客户{i}") for i in range(n)]
        msgids = [emu.customer_text(kf, user, f"问题{i}", notify=False) for i, user in enumerate(users)]
        cpu0 = app.cpu_seconds()
        fired_wall = time.time()
        status = emu.fire_callback(kf, wait=True)
        done = wait_for(emu, lambda: send_count(emu) >= n, deadline)
        if done:
            wait_for(emu, lambda: send_count(emu) > n, deadline, cap=SETTLE_SECONDS)
        sends = emu.sends
        run.update(reply_stats(emu, msgids))
        run["app_cpu_s"] = rounded(app.cpu_seconds() - cpu0)
    wanted = set(msgids)
    latencies = [s.time - fired_wall for s in sends if s.reply_to in wanted]
    ideal = math.ceil(n / concurrency) * opts.bot_latency
    last = max(latencies) if latencies else None
    run.update(
        {
            "callback_status": status,
            "time_to_first_reply_s": rounded(min(latencies) if latencies else None),
            "time_to_last_reply_s": rounded(last),
            "reply_p50_s": rounded(percentile(latencies, 50)),
            "reply_p99_s": rounded(percentile(latencies, 99)),
            "ideal_s": rounded(ideal),
            "ratio": rounded(last / ideal, 2) if last is not None and ideal > 0 else None,
            "timed_out": not done,
        }
    )
    return run


def run(opts: Options, deadline: Deadline) -> dict[str, Any]:
    result: dict[str, Any] = {
        "scenario": NAME,
        "customers": opts.customers,
        "bot_latency_s": opts.bot_latency,
        "runs": [],
    }
    bot = FakeOpenAIServer(latency=opts.bot_latency)
    bot_url = bot.start()
    try:
        for concurrency in opts.concurrencies:
            if deadline.expired():
                break
            run_result = _one_run(opts, deadline, concurrency, bot_url)
            run_result["bot_peak_concurrency"] = bot.stats()["peak_concurrency"]
            bot.reset()
            result["runs"].append(run_result)
    finally:
        bot.stop()
    result["timed_out"] = len(result["runs"]) < len(opts.concurrencies) or any(
        r["timed_out"] for r in result["runs"]
    )
    return result
