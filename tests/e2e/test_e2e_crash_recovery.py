"""Invariant 3 across SIGKILL: ``python app.py`` is killed at five points while 100 messages are in
flight, restarted and poked with one callback; every message is answered exactly once.

The oracles do not trust the emulator's refusal of reused msgids alone: the model must be asked at
most once per message plus once per message that was in flight at a kill, resends refused as
duplicates stay within the same bound, and nothing is left pending in the state at the end. (With a
``finish`` that records nothing, every restart asks the model again for every earlier message.)"""

from __future__ import annotations

import time

from tests.e2e.e2e_helpers import (
    answers_per_message,
    app_with_fake_llm,
    pending_left,
    refused_resends,
    start_app,
)

CUSTOMERS, PER_CUSTOMER = 25, 4  # 100 messages a round
KILL_AFTER_SENDS = (None, 5, 30, 60, 90)  # None: right after the round's first sync_msg


def _sync_calls(emu) -> int:
    return sum(
        1 for e in emu.protocol_log() if e.get("kind") == "api" and str(e.get("api")).endswith("sync_msg")
    )


def test_sigkill_at_five_points_loses_and_duplicates_nothing(emu, tmp_path, fake_llm):
    llm = fake_llm
    # debug: the strictest setting for the secrets check below
    app = app_with_fake_llm(emu, tmp_path, llm.base_url, debug=True)
    kf = emu.default_kfid
    users = [emu.add_customer(f"客户{i}") for i in range(CUSTOMERS)]
    inbound: list[str] = []
    in_flight_at_kills = 0  # model calls whose answer had not reached WeCom when the process died
    start_app(app)
    try:
        for round_no, kill_after in enumerate(KILL_AFTER_SENDS):
            sends_before, syncs_before = len(emu.sends), _sync_calls(emu)
            inbound += [
                emu.customer_text(kf, user, f"第{round_no}轮第{n}问", notify=False)
                for n in range(PER_CUSTOMER)
                for user in users
            ]
            assert emu.fire_callback(kf) == 200
            if kill_after is None:
                assert emu.wait_until(lambda s=syncs_before: _sync_calls(emu) > s, 20)
            else:
                emu.wait_for_sends(sends_before + kill_after, timeout=60)
            app.kill()
            in_flight_at_kills += llm.calls - len(emu.sends)
            start_app(app)
            assert emu.fire_callback(kf) == 200
            emu.wait_for_sends(len(inbound), timeout=60)
            counts = answers_per_message(emu, inbound)
            assert [m for m, n in counts.items() if n == 0] == [], f"round {round_no}: lost messages"
            assert [m for m, n in counts.items() if n > 1] == [], f"round {round_no}: duplicates"
        time.sleep(0.5)  # a late duplicate would show up here
    finally:
        code = app.stop()
    counts = answers_per_message(emu, inbound)
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    losses = sum(1 for n in counts.values() if n == 0)
    print(
        f"\nFIGURES test4: rounds=5 messages={len(inbound)} replies={len(emu.sends)} "
        f"duplicates={duplicates} losses={losses} model_calls={llm.calls} "
        f"in_flight_at_kills={in_flight_at_kills} refused_duplicate_sends={refused_resends(emu)}"
    )
    assert (duplicates, losses) == (0, 0)
    assert len(emu.sends) == len(inbound)
    assert llm.calls <= len(inbound) + in_flight_at_kills
    assert refused_resends(emu) <= in_flight_at_kills
    assert pending_left(app.state_dir) == {}
    assert not [r for r in emu.rejections if r.errcode in (95001, 95002, 95018)]
    assert code == 0
    # Invariant 8 for the subprocess logs: no credential in any line.
    text = app.log_text()
    assert "Traceback" not in text
    for secret in emu.secrets():
        assert secret not in text
