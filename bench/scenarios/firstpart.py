"""``firstpart``: how soon a customer sees the start of a long answer. A fake model streams a 3-part
answer at a steady pace; the app runs with ``stream: true`` (parts sent as they are settled) and,
for comparison, without streaming. Times are from the customer's message to WeCom accepting the
first and the last part; ``first_over_last`` is the streamed run's ratio (the target is ≤ 0.4).
"""

from __future__ import annotations

import time
from typing import Any

from bench.harness import Deadline, Options, rounded, running_app, wait_for
from sandbox.fake_openai import FakeOpenAIServer

NAME = "firstpart"
PARTS = 3
PARAGRAPH = "退货须在签收后七天内申请，商品需保持完好，配件齐全。" * 5
ANSWER = "\n\n".join(f"第{i}段：{PARAGRAPH}" for i in range(1, 16))  # three nearly full 2048-byte parts


def _one_run(opts: Options, deadline: Deadline, bot_url: str, *, stream: bool) -> dict[str, Any]:
    overrides = {
        "bot_type": "openai",
        "open_ai_api_key": "sk-bench",
        "open_ai_api_base": bot_url,
        "stream": stream,
        "request_timeout": 60.0,
    }
    with running_app(opts, deadline, overrides, label=f"{NAME}-{'stream' if stream else 'whole'}") as (
        emu,
        _,
    ):
        kf, user = emu.default_kfid, emu.add_customer("长回答")
        asked = time.time()
        emu.customer_text(kf, user, "怎么退货？", wait=True)
        done = wait_for(emu, lambda: len(emu.sends_to(user)) >= PARTS, deadline)
        times = sorted(s.time - asked for s in emu.sends_to(user))
    return {
        "parts": len(times),
        "time_to_first_part_s": rounded(times[0] if times else None),
        "time_to_last_part_s": rounded(times[-1] if times else None),
        "timed_out": not done,
    }


def run(opts: Options, deadline: Deadline) -> dict[str, Any]:
    writing = 1.5 if opts.smoke else 3.0  # seconds the model takes to write the whole answer
    bot = FakeOpenAIServer(latency=0.1, reply_fn=lambda _body: ANSWER)
    bot.stream_chars_per_second = len(ANSWER) / writing
    bot_url = bot.start()
    try:
        streamed = _one_run(opts, deadline, bot_url, stream=True)
        bot.latency = 0.1 + writing  # the same model time, answered at once
        whole = _one_run(opts, deadline, bot_url, stream=False)
    finally:
        bot.stop()
    first, last = streamed["time_to_first_part_s"], streamed["time_to_last_part_s"]
    return {
        "scenario": NAME,
        "answer_bytes": len(ANSWER.encode("utf-8")),
        "streamed": streamed,
        "not_streamed": whole,
        "first_over_last": rounded(first / last, 2) if first and last else None,
        "timed_out": streamed["timed_out"] or whole["timed_out"],
    }
