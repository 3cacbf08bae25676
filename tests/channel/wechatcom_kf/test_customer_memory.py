"""What the channel keeps per customer of the last 48 h stays small: with 50,000 customers a day it is
most of the app's memory (docs/performance.md).

Measured with tracemalloc (exact, not timed), through the real classes, for customers who wrote once
and were answered: the send ledger, the session claim and the nickname cache. Before the records were
made compact these held 620 + 211 + 328 = 1,159 bytes per customer and a just-finished msgid 225
bytes; now about 364 + 155 + 288 = 807 and 169.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from bench.harness import retained_mb
from channel.wechatcom_kf.desk.customers import CustomerDirectory
from channel.wechatcom_kf.expiring import ExpiringKeys
from channel.wechatcom_kf.inbound.inflight import FINISHED_TTL_SECONDS, MAX_FINISHED
from channel.wechatcom_kf.session.budget import BudgetLedger
from channel.wechatcom_kf.session.takeover import Takeover
from channel.wechatcom_kf.store.json_store import JsonFileStore

KF = "wkMEMORY"
CUSTOMERS = 20_000
USERS = [f"wmCustomer{i:024d}" for i in range(CUSTOMERS)]  # as long as WeCom's ids


class _Wecom:
    """The two WeCom calls the classes below make, answered at once."""

    def trans_service_state(self, *_args: Any, **_kwargs: Any) -> None:
        return None

    def get_service_state(self, *_args: Any) -> Any:
        return {"service_state": 1}

    def batchget_customer(self, external_userids: list[str]) -> dict[str, dict[str, Any]]:
        return {u: {"nickname": f"客户{u[-5:]}", "gender": 1} for u in external_userids}


def _bytes_per_customer(build: Any) -> float:
    return retained_mb(build) * 1e6 / CUSTOMERS


def test_the_send_ledger_claims_and_nicknames_of_an_answered_customer_stay_under_1000_bytes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="channel.wechatcom_kf")  # the run's log collector keeps lines
    wecom = _Wecom()
    store = JsonFileStore(tmp_path)

    def build() -> tuple[BudgetLedger, Takeover, CustomerDirectory]:
        ledger, takeover, directory = BudgetLedger(), Takeover(store, wecom), CustomerDirectory(wecom)
        for i, user in enumerate(USERS):
            key, msgid = (KF, user), f"from_msgid_{4622416642169452483 + i}"
            ledger.note_message(key, msgid, 1_700_000_000.0 + i)
            assert directory.lookup(user) is not None
            assert takeover.claim_for_bot(KF, user)
            assert ledger.allowance_for(key, [msgid]) == 5
            ledger.consume(key, 1)
            ledger.answered(key, [msgid])
        return ledger, takeover, directory

    per_customer = _bytes_per_customer(build)
    print(f"ledger + claim + nickname: {per_customer:.0f} bytes per customer")
    store.close()
    assert per_customer < 1000


def test_a_just_finished_msgid_costs_under_200_bytes() -> None:
    def build() -> ExpiringKeys:
        finished = ExpiringKeys(FINISHED_TTL_SECONDS, MAX_FINISHED)  # InFlight's cache of them
        for i in range(CUSTOMERS):
            finished.add(f"from_msgid_{4622416642169452483 + i}")
        return finished

    per_id = _bytes_per_customer(build)
    print(f"just-finished msgid: {per_id:.0f} bytes")
    assert per_id < 200
