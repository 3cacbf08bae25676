"""Drive many customer messages through the emulator at the pace a real customer base allows.

WeCom lets the app send at most 5 messages per customer message, counted since the customer's latest
message, so a customer with 6 unanswered messages cannot get 6 answers. Real customers also wait for
answers: a customer's next message is injected only while at most ``MAX_OUTSTANDING`` of theirs are
unanswered. Between these limits messages are injected as fast as possible, in batches that each
end with one callback (as WeCom coalesces pushes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bench.harness import Deadline
from sandbox.emulator import WeComEmulator

MAX_OUTSTANDING = 4
BATCH = 500


@dataclass
class LoadResult:
    injected: int = 0
    replies: int = 0
    callbacks: int = 0
    first_inject: float = 0.0  # time.monotonic()
    last_inject: float = 0.0
    done_at: float | None = None  # time.monotonic() when every message had its reply
    timed_out: bool = False
    msgids: list[str] = field(default_factory=list)


class _ReplyCounter:
    """Replies per customer since the drive began, updated incrementally from the emulator's
    append-only list of sends (a long soak calls ``drive`` many times: earlier sends are not re-read)."""

    def __init__(self, emu: WeComEmulator) -> None:
        self.emu = emu
        with emu.state.lock:
            self.start = self.index = len(emu.state.sends)
        self.per_user: dict[str, int] = {}

    def update(self) -> int:
        sends = self.emu.state.sends  # read under the emulator's lock (inside wait_until) or racy-but-safe
        while self.index < len(sends):
            user = sends[self.index].touser
            self.per_user[user] = self.per_user.get(user, 0) + 1
            self.index += 1
        return self.index - self.start


def drive(
    emu: WeComEmulator, users: list[str], per_user: int, deadline: Deadline, *, keep_msgids: bool = False
) -> LoadResult:
    """Send ``per_user`` texts from every user (round by round), then wait for every reply."""
    kf = emu.default_kfid
    result = LoadResult(first_inject=time.monotonic())
    counter = _ReplyCounter(emu)
    pending_in_batch = 0
    for round_no in range(per_user):
        need = round_no - MAX_OUTSTANDING + 1  # replies each user must have before message round_no
        for user in users:
            if counter.per_user.get(user, 0) < need:
                if pending_in_batch:
                    emu.fire_callback(kf, wait=False)
                    result.callbacks += 1
                    pending_in_batch = 0
                ok = emu.wait_until(
                    lambda u=user, k=need: counter.update() >= 0 and counter.per_user.get(u, 0) >= k,
                    timeout=deadline.remaining(),
                )
                if not ok:
                    result.timed_out = True
                    return _finish(emu, counter, result)
            msgid = emu.customer_text(kf, user, f"m{round_no}", notify=False)
            if keep_msgids:
                result.msgids.append(msgid)
            result.injected += 1
            pending_in_batch += 1
            if pending_in_batch >= BATCH:
                emu.fire_callback(kf, wait=False)
                result.callbacks += 1
                pending_in_batch = 0
    if pending_in_batch:
        emu.fire_callback(kf, wait=False)
        result.callbacks += 1
    result.last_inject = time.monotonic()
    total = result.injected
    if emu.wait_until(lambda: counter.update() >= total, timeout=deadline.remaining()):
        result.done_at = time.monotonic()
    else:
        result.timed_out = True
    return _finish(emu, counter, result)


def _finish(emu: WeComEmulator, counter: _ReplyCounter, result: LoadResult) -> LoadResult:
    with emu.state.lock:
        result.replies = counter.update()
    if not result.last_inject:
        result.last_inject = time.monotonic()
    return result
