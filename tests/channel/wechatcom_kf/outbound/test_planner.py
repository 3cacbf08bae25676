import logging
import os

from bridge.reply import Reply, ReplyType
from channel.wechatcom_kf.desk.texts import CustomerTexts
from channel.wechatcom_kf.outbound.media import MediaUpload
from channel.wechatcom_kf.outbound.planner import OutboundLimits, OutboundPart, plan_reply
from channel.wechatcom_kf.outbound.text import TRUNCATION_MARKER


def _up(part: OutboundPart) -> MediaUpload:
    assert part.upload is not None
    return part.upload


MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


def test_text_types_become_plain_text_parts():
    for kind in (ReplyType.TEXT, ReplyType.TEXT_, ReplyType.INFO, ReplyType.ERROR):
        parts = plan_reply(Reply(kind, "## 标题\n**你好**"), budget=5)
        assert [(p.msgtype, p.body) for p in parts] == [("text", {"content": "【标题】\n你好"})]
        assert parts[0].upload is None


def test_long_text_fitted_into_budget():
    parts = plan_reply(Reply(ReplyType.TEXT, "很长的回答。" * 2000), budget=3)
    assert len(parts) == 3
    assert all(len(p.body["content"].encode()) <= 2048 for p in parts)
    assert parts[-1].body["content"].endswith(TRUNCATION_MARKER)


def test_unsupported_types_return_nothing_with_a_warning(caplog):
    for kind in (ReplyType.CARD, ReplyType.INVITE_ROOM, ReplyType.MINIAPP):
        with caplog.at_level(logging.WARNING):
            caplog.clear()
            assert plan_reply(Reply(kind, "x"), budget=5) == []
        assert any(r.levelno == logging.WARNING for r in caplog.records)


def test_no_budget_returns_nothing():
    assert plan_reply(Reply(ReplyType.TEXT, "你好"), budget=0) == []


def test_video_file_sent_as_mp4(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(MP4_HEAD + os.urandom(2000))
    parts = plan_reply(Reply(ReplyType.VIDEO, str(path)), budget=5)
    assert len(parts) == 1 and parts[0].msgtype == "video"
    assert _up(parts[0]).filename == "clip.mp4" and _up(parts[0]).data == path.read_bytes()


def test_oversized_or_foreign_video_gives_text(tmp_path):
    big = tmp_path / "big.mp4"
    big.write_bytes(MP4_HEAD + b"\0" * 5000)
    avi = tmp_path / "clip.avi"
    avi.write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST" + b"\0" * 100)
    limits = OutboundLimits(video_bytes=4096)
    parts = plan_reply(Reply(ReplyType.VIDEO, str(big)), budget=5, limits=limits)
    assert [p.msgtype for p in parts] == ["text"] and "太大" in parts[0].body["content"]
    parts = plan_reply(Reply(ReplyType.VIDEO, str(avi)), budget=5, limits=limits)
    assert [p.msgtype for p in parts] == ["text"] and parts[0].body[
        "content"
    ] == CustomerTexts().media_failed_for("video")


def test_default_video_limit_is_ten_megabytes(tmp_path):
    big = tmp_path / "big.mp4"
    with open(big, "wb") as fh:
        fh.write(MP4_HEAD)
        fh.truncate(10 * 1024 * 1024 + 1)
    parts = plan_reply(Reply(ReplyType.VIDEO, str(big)), budget=5)
    assert [p.msgtype for p in parts] == ["text"]


def test_video_url(http_files):
    ok = http_files("/v/clip.mp4", MP4_HEAD + b"\1" * 3000)
    big = http_files("/v/big.mp4", MP4_HEAD + b"\1" * 9000)
    limits = OutboundLimits(video_bytes=5000)
    parts = plan_reply(Reply(ReplyType.VIDEO_URL, ok), budget=5, http_timeout=5, limits=limits)
    assert parts[0].msgtype == "video" and _up(parts[0]).filename == "clip.mp4"
    parts = plan_reply(Reply(ReplyType.VIDEO_URL, big), budget=5, http_timeout=5, limits=limits)
    assert [p.msgtype for p in parts] == ["text"] and big in parts[0].body["content"]
    missing = http_files.base + "/v/none.mp4"
    parts = plan_reply(Reply(ReplyType.VIDEO_URL, missing), budget=5, http_timeout=5)
    assert [p.msgtype for p in parts] == ["text"] and missing in parts[0].body["content"]


def test_a_video_url_that_fails_for_another_reason_is_not_called_too_big():
    """The planner decides by the problem's type, not by words in its log text (here a host name)."""
    url = "http://too_big.invalid/v/clip.mp4"  # .invalid never resolves: a download failure
    [part] = plan_reply(Reply(ReplyType.VIDEO_URL, url), budget=5, http_timeout=2)
    text = part.body["content"]
    assert text == CustomerTexts().video_link.format(url=url)


def test_file_part_named_after_basename(tmp_path):
    path = tmp_path / "报价单_v2.pdf"
    path.write_bytes(b"%PDF-1.4 test document")
    parts = plan_reply(Reply(ReplyType.FILE, str(path)), budget=5)
    assert len(parts) == 1 and parts[0].msgtype == "file"
    assert _up(parts[0]).filename == "报价单_v2.pdf"
    assert _up(parts[0]).content_type == "application/pdf"
    assert _up(parts[0]).data == path.read_bytes()


def test_oversized_or_missing_file_gives_text(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 3000)
    parts = plan_reply(Reply(ReplyType.FILE, str(path)), budget=5, limits=OutboundLimits(file_bytes=2000))
    assert [p.msgtype for p in parts] == ["text"] and "太大" in parts[0].body["content"]
    parts = plan_reply(Reply(ReplyType.FILE, str(tmp_path / "nope.txt")), budget=5)
    assert [p.msgtype for p in parts] == ["text"] and "文件" in parts[0].body["content"]


def test_unexpected_content_never_raises():
    for kind in ReplyType:
        for content in (None, 12345, object()):
            parts = plan_reply(Reply(kind, content), budget=2)
            assert len(parts) <= 2


def test_a_file_url_is_read_as_a_local_file(tmp_path):
    """CoW 2.x sends the images it finds in a bot's text as IMAGE_URL "file:///..." replies."""
    from PIL import Image

    path = tmp_path / "商品 图.png"
    Image.new("RGB", (40, 30), "red").save(path)
    uri = path.as_uri()
    parts = plan_reply(Reply(ReplyType.IMAGE_URL, uri), budget=5)
    assert [p.msgtype for p in parts] == ["image"]
    missing = plan_reply(Reply(ReplyType.FILE, (tmp_path / "none.pdf").as_uri()), budget=5)
    assert [p.msgtype for p in missing] == ["text"]
