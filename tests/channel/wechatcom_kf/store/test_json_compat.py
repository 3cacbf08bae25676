"""State files written by the previous version (done msgids without their account in the journal) load:
pending minus what was finished, dedup of every finished or skipped msgid, values; the journal is then
rewritten in the current format and loads again. The files are verbatim what that version wrote for
this history, cut off by a crash (never closed)."""

from __future__ import annotations

from pathlib import Path

from channel.wechatcom_kf.store import JsonFileStore
from channel.wechatcom_kf.store.journal import JOURNAL_NAME
from channel.wechatcom_kf.store.main_file import FILE_NAME
from tests.channel.wechatcom_kf.store.store_helpers import KF, KF2, T0, FakeClock, ids, item, journal_records

# accept_page(KF, "cur-7", [m1, m2, m3], skipped_ids=["old1"]); finish(m1); two set_value; finish(m2)
PREVIOUS_MAIN = (
    '{"version":3,"accounts":{"wkAAAA":{"cursor":"cur-7","pending":['
    + ",".join(
        f'{{"msgid":"{msgid}","open_kfid":"wkAAAA","external_userid":"wmUSER","send_time":1700000000,'
        '"origin":3,"msgtype":"text","text":{"content":"你好"}}'
        for msgid in ("m1", "m2", "m3")
    )
    + "]}}}"
)
PREVIOUS_JOURNAL = """["old1", 1700259200.0]
["m1", 1700259200.0]
["k", "takeover:wmUSER", "zhangsan", null]
["k", "plan:m2", "{\\"parts\\": 2}", 1700003600.0]
["m2", 1700259200.0]
"""


def write_previous(directory: Path) -> None:
    (directory / FILE_NAME).write_text(PREVIOUS_MAIN, "utf-8")
    (directory / JOURNAL_NAME).write_text(PREVIOUS_JOURNAL, "ascii")


def check_state(store: JsonFileStore) -> None:
    assert store.load_cursor(KF) == "cur-7"
    assert ids(store.pending(KF)) == ["m3"]
    assert store.pending(KF)[0] == item("m3")
    assert store.accept_page(KF, "cur-8", [item("old1"), item("m1"), item("m2"), item("m3")]) == []
    assert store.get_value("takeover:wmUSER") == "zhangsan"
    assert store.get_value("plan:m2") == '{"parts": 2}'


def test_state_of_the_previous_version_loads(tmp_path: Path) -> None:
    write_previous(tmp_path)
    clock = FakeClock(T0 + 10)
    store = JsonFileStore(tmp_path, clock=clock)
    check_state(store)
    # Rewritten in the current format at once: digests per account, values as they were.
    assert sorted(map(str, journal_records(tmp_path))) == sorted(
        map(
            str,
            [
                ["old1", 1700259200.0],
                ["m1", 1700259200.0],
                ["m2", 1700259200.0],
                ["k", "takeover:wmUSER", "zhangsan", None],
                ["k", "plan:m2", '{"parts": 2}', 1700003600.0],
            ],
        )
    )
    store.finish(KF, "m3")
    store.close()
    again = JsonFileStore(tmp_path, clock=clock)
    assert again.pending(KF) == []
    assert again.accept_page(KF, "cur-9", [item("m1"), item("m3"), item("old1")]) == []
    assert ids(again.accept_page(KF, "cur-9", [item("m4")])) == ["m4"]
    again.close()


def test_old_done_ids_stay_done_until_their_expiry(tmp_path: Path) -> None:
    write_previous(tmp_path)
    clock = FakeClock(T0 + 10)
    store = JsonFileStore(tmp_path, clock=clock)
    store.close()
    clock.now = 1700259200.0 + 1  # past the expiry the previous version wrote
    again = JsonFileStore(tmp_path, clock=clock)
    assert ids(again.accept_page(KF, "cur-8", [item("old1")])) == ["old1"]
    assert ids(again.accept_page(KF2, "x", [item("m1", KF2)])) == ["m1"]
    again.close()
