"""media/upload validation (magic, AMR duration, sizes), media/get, customer media, AMR parsing."""

from __future__ import annotations

import pytest

from sandbox.emulator.amr import AmrError, amr_duration

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
JPG = b"\xff\xd8\xff\xe0" + b"\0" * 64
MP4 = b"\0\0\0\x18ftypmp42" + b"\0" * 64


def amr(seconds: float, mode: int = 7) -> bytes:
    """Synthetic AMR-NB: mode 7 (12.2 kbit/s) frames are 32 bytes incl. header, 20 ms each."""
    size = {0: 13, 7: 32}[mode]
    frame = bytes([mode << 3 | 0x04]) + b"\0" * (size - 1)
    return b"#!AMR\n" + frame * int(seconds / 0.02)


def test_amr_duration_counts_frames_by_mode():
    assert amr_duration(amr(1.0)) == pytest.approx(1.0)
    assert amr_duration(amr(2.0, mode=0)) == pytest.approx(2.0)
    with pytest.raises(AmrError):
        amr_duration(b"#!AMR-WB\n" + b"\0" * 40)
    with pytest.raises(AmrError):
        amr_duration(b"#!AMR\n" + bytes([9 << 3]) + b"\0" * 40)  # reserved frame type


@pytest.mark.parametrize(
    ("kind", "data", "errcode"),
    [
        ("image", PNG, 0),
        ("image", JPG, 0),
        ("image", b"GIF89a" + b"\0" * 40, 40005),
        ("image", b"\x89PNG", 40006),  # not more than 5 bytes
        ("voice", amr(59.9), 0),
        ("voice", amr(60.5), 40010),
        ("voice", b"RIFF" + b"\0" * 60, 40005),
        ("video", MP4, 0),
        ("video", PNG, 40005),
        ("file", b"hello world", 0),
        ("doc", b"hello world", 40004),
    ],
)
def test_upload_validation(api, kind, data, errcode):
    assert api.upload(kind, data, "x.bin")["errcode"] == errcode


def test_size_limits(api):
    too_big = b"\xff\xd8\xff" + b"\0" * (10 * 1024 * 1024)
    assert api.upload("image", too_big)["errcode"] == 40009
    assert api.upload("voice", b"#!AMR\n" + bytes([0x3C]) + b"\0" * (2 * 1024 * 1024))["errcode"] == 40010


def test_missing_media_field(api):
    assert api.upload("file", b"hello world", field="file")["errcode"] == 40058


def test_upload_then_get_returns_bytes_and_headers(emu, api):
    answer = api.upload("file", "报告内容".encode() * 4, "报告.txt")
    assert answer["type"] == "file" and answer["created_at"]
    stored = emu.uploaded_media(answer["media_id"])
    assert (stored.kind, stored.filename) == ("file", "报告.txt")
    resp = api.get("media/get", media_id=answer["media_id"])
    assert resp.status_code == 200 and resp.content == "报告内容".encode() * 4
    assert "attachment" in resp.headers["Content-Disposition"]
    assert "%E6%8A%A5%E5%91%8A.txt" in resp.headers["Content-Disposition"]


def test_get_unknown_or_expired_media_is_40007(emu, api):
    assert api.get("media/get", media_id="nope").json()["errcode"] == 40007
    media_id = api.upload("image", PNG, "a.png")["media_id"]
    assert api.get("media/get", media_id=media_id).headers["Content-Type"] == "image/png"
    emu.advance_time(3 * 86400 + 1)
    assert api.get("media/get", media_id=media_id).json()["errcode"] == 40007


def test_customer_media_is_fetchable_by_the_app(emu, api, sync_token):
    kf, user = emu.default_kfid, emu.add_customer()
    emu.customer_media(kf, user, "voice", amr(1.0), filename="v.amr", notify=False)
    (item,) = api.post("kf/sync_msg", {"open_kfid": kf, "token": sync_token(kf)})["msg_list"]
    assert item["msgtype"] == "voice"
    resp = api.get("media/get", media_id=item["voice"]["media_id"])
    assert resp.content == amr(1.0) and resp.headers["Content-Type"] == "audio/amr"
