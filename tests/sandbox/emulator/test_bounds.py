"""Memory stays flat over a long run: logs are capped, old media bytes are dropped."""

from __future__ import annotations

import pytest
import requests

from sandbox.emulator import WeComEmulator
from sandbox.emulator.state import PROTOCOL_LOG_MAX

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 92  # 100 bytes


def test_protocol_log_keeps_the_newest_entries_with_monotonic_seqs(emu: WeComEmulator) -> None:
    for i in range(PROTOCOL_LOG_MAX + 50):
        emu.state.add_protocol({"kind": "api", "api": f"fill/{i}", "errcode": 0})
    log = emu.protocol_log()
    seqs = [e["seq"] for e in log]
    assert len(log) == PROTOCOL_LOG_MAX
    assert log[-1]["api"] == f"fill/{PROTOCOL_LOG_MAX + 49}"
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    page = requests.get(emu.base_url + "sandbox/api/protocol", params={"since": seqs[-3]}, timeout=5).json()
    assert [e["seq"] for e in page["items"]] == seqs[-2:] and page["next"] == seqs[-1]


def test_media_over_the_byte_cap_drops_the_oldest(emu: WeComEmulator, api) -> None:
    emu.media_bytes_cap = 3 * len(PNG)
    ids = [api.upload("image", PNG, f"{i}.png")["media_id"] for i in range(5)]
    assert api.get("media/get", media_id=ids[0]).json()["errcode"] == 40007
    with pytest.raises(KeyError):
        emu.uploaded_media(ids[1])
    assert [api.get("media/get", media_id=m).content for m in ids[2:]] == [PNG] * 3
    assert emu.state.media_bytes == 3 * len(PNG)


def test_expired_media_is_forgotten_on_the_next_upload(emu: WeComEmulator, api) -> None:
    old = api.upload("image", PNG, "old.png")["media_id"]
    emu.advance_time(3 * 86400 + 1)
    new = api.upload("image", PNG, "new.png")["media_id"]
    assert list(emu.state.media) == [new] and emu.state.media_bytes == len(PNG)
    assert api.get("media/get", media_id=old).json()["errcode"] == 40007
