import io
import random

from PIL import Image

from bridge.reply import Reply, ReplyType
from channel.wechatcom_kf.desk.texts import CustomerTexts
from channel.wechatcom_kf.outbound.images import prepare_image
from channel.wechatcom_kf.outbound.media import MediaUpload
from channel.wechatcom_kf.outbound.planner import OutboundLimits, OutboundPart, plan_reply


def _up(part: OutboundPart) -> MediaUpload:
    assert part.upload is not None
    return part.upload


MB = 1024 * 1024


def _noise_png(width, height, seed=1):
    data = random.Random(seed).randbytes(width * height * 3)
    buf = io.BytesIO()
    Image.frombytes("RGB", (width, height), data).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _png(size=(64, 48), color=(200, 30, 30), mode="RGB"):
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def _decoded(part):
    img = Image.open(io.BytesIO(_up(part).data))
    img.load()
    return img


def test_thirty_megabyte_noise_png_becomes_one_image_under_ten_megabytes():
    source = _noise_png(4000, 3000)
    assert len(source) > 30 * MB
    parts = plan_reply(Reply(ReplyType.IMAGE, io.BytesIO(source)), budget=5)
    assert len(parts) == 1
    part = parts[0]
    assert part.msgtype == "image" and part.upload is not None
    assert _up(part).kind == "image"
    assert len(_up(part).data) <= 10 * MB
    img = _decoded(part)
    assert img.format in ("JPEG", "PNG")
    assert _up(part).content_type == f"image/{img.format.lower()}"


def test_small_limit_forces_resize_and_terminates():
    source = _noise_png(800, 600)
    upload = prepare_image(source, max_bytes=60_000)
    img = Image.open(io.BytesIO(upload.data))
    assert len(upload.data) <= 60_000
    assert img.format == "JPEG" and img.width < 800


def test_impossible_limit_gives_a_text_notice():
    parts = plan_reply(
        Reply(ReplyType.IMAGE, _noise_png(300, 300)), budget=5, limits=OutboundLimits(image_bytes=200)
    )
    assert [p.msgtype for p in parts] == ["text"]
    assert "图片" in parts[0].body["content"]


def test_garbage_and_truncated_images_give_a_text_part():
    truncated = _png((400, 400))[:200]
    for content in (b"definitely not an image", truncated, io.BytesIO(b"\x89PNG\r\n\x1a\n garbage")):
        parts = plan_reply(Reply(ReplyType.IMAGE, content), budget=3)
        assert len(parts) == 1 and parts[0].msgtype == "text" and parts[0].upload is None
        assert parts[0].body["content"] == CustomerTexts().media_failed_for("image")


def test_decompression_bomb_is_refused(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    parts = plan_reply(Reply(ReplyType.IMAGE, _png((100, 100))), budget=1)
    assert parts[0].msgtype == "text" and "图片" in parts[0].body["content"]


def test_transparent_png_kept_as_png_opaque_webp_becomes_jpeg():
    transparent = _png((50, 50), (0, 128, 0, 100), mode="RGBA")
    buf = io.BytesIO()
    Image.open(io.BytesIO(transparent)).save(buf, format="GIF")
    gif = buf.getvalue()
    parts = plan_reply(Reply(ReplyType.IMAGE, transparent), budget=1)
    assert _decoded(parts[0]).format == "PNG"
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (1, 2, 3)).save(buf, format="WEBP")
    parts = plan_reply(Reply(ReplyType.IMAGE, buf.getvalue()), budget=1)
    assert _decoded(parts[0]).format == "JPEG" and _up(parts[0]).filename == "image.jpg"
    assert _decoded(plan_reply(Reply(ReplyType.IMAGE, gif), budget=1)[0]).format in ("PNG", "JPEG")


def test_exif_orientation_applied():
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when shown
    Image.new("RGB", (80, 40), (10, 20, 30)).save(buf, format="JPEG", exif=exif)
    parts = plan_reply(Reply(ReplyType.IMAGE, buf.getvalue()), budget=1)
    assert _decoded(parts[0]).size == (40, 80)


def test_image_from_path_and_stream_at_end(tmp_path):
    path = tmp_path / "pic.png"
    path.write_bytes(_png())
    assert plan_reply(Reply(ReplyType.IMAGE, str(path)), budget=1)[0].msgtype == "image"
    stream = io.BytesIO()
    stream.write(_png())  # positioned at its end, as plugins leave it
    assert plan_reply(Reply(ReplyType.IMAGE, stream), budget=1)[0].msgtype == "image"


def test_image_url_downloaded(http_files):
    url = http_files("/a_b.png", _png((30, 20)))
    parts = plan_reply(Reply(ReplyType.IMAGE_URL, url), budget=2, http_timeout=5)
    assert len(parts) == 1 and parts[0].msgtype == "image"
    assert _decoded(parts[0]).size == (30, 20)


def test_image_url_404_and_over_cap_give_text(http_files):
    missing = http_files.base + "/missing.png"
    big = http_files("/big.png", _png() + b"\0" * 300_000)
    unsized = http_files("/stream.png", b"\0" * 300_000, length=False)
    texts = CustomerTexts()
    failed, too_big = texts.media_failed_for("image"), texts.media_too_big_for("image")
    expected = {missing: failed, big: too_big, unsized: too_big}
    expected.update({"ftp://127.0.0.1/x.png": failed, "http://127.0.0.1:9/refused.png": failed})
    for url, notice in expected.items():
        parts = plan_reply(
            Reply(ReplyType.IMAGE_URL, url), budget=5, http_timeout=2, max_download_bytes=100_000
        )
        assert len(parts) == 1 and parts[0].msgtype == "text", url
        assert parts[0].body["content"] == notice, url
