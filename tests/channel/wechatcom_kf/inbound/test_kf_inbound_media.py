"""Received media is stored under names we choose, 0600, inside a 0700 directory, and pruned."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from channel.wechatcom_kf.api import DownloadedMedia
from channel.wechatcom_kf.inbound.media import (
    MediaSaveError,
    download_and_save,
    prune_media,
    sanitize_display_name,
    sniff_extension,
)
from tests.media_samples import tiny_png

PNG = tiny_png()  # a real image: customers' images are decoded before use
JPG = b"\xff\xd8\xff\xe0" + b"\x00" * 32


class OneFile:
    def __init__(self, downloaded: DownloadedMedia) -> None:
        self.downloaded = downloaded

    def download_media(self, media_id: str, max_bytes: int) -> DownloadedMedia:
        return self.downloaded


@pytest.mark.parametrize(
    "hostile",
    [
        "../../evil",
        "a/../../b.sh",
        "/etc/passwd",
        "..\\..\\win.exe",
        "x\x00.png/../../y",
        "../" * 40 + "deep.sh",
        "",
        None,
    ],
)
def test_untrusted_filenames_never_shape_the_path(tmp_path: Path, hostile: str | None) -> None:
    media_dir = tmp_path / "media"
    saved = download_and_save(
        OneFile(DownloadedMedia(b"hello world", "text/plain", hostile)),
        "M",
        "file",
        "from_msgid_1",
        media_dir,
    )
    resolved = saved.path.resolve()
    assert resolved.parent == media_dir.resolve()
    assert resolved.name.endswith(".txt")
    assert len(resolved.stem) == 16 and all(c in "0123456789abcdef" for c in resolved.stem)
    assert stat.S_IMODE(resolved.stat().st_mode) == 0o600
    assert stat.S_IMODE(media_dir.stat().st_mode) == 0o700
    assert (
        "/" not in saved.display_name and "\\" not in saved.display_name and "\x00" not in saved.display_name
    )
    assert not saved.display_name.startswith(".")
    assert sorted(os.listdir(media_dir)) == [resolved.name]  # no temp file left behind
    assert list(tmp_path.iterdir()) == [media_dir]


def test_display_name_keeps_a_harmless_original_name() -> None:
    assert sanitize_display_name("C:\\docs\\季度报告.pdf") == "季度报告.pdf"
    assert sanitize_display_name("../../evil") == "evil"
    assert sanitize_display_name("a\x00b\x1fc.txt") == "abc.txt"
    assert sanitize_display_name(42) == ""


def test_extension_comes_from_content_not_from_the_name(tmp_path: Path) -> None:
    saved = download_and_save(
        OneFile(DownloadedMedia(PNG, "application/octet-stream", "run.sh")), "M", "file", "m2", tmp_path
    )
    assert saved.ext == ".png"
    unknown = download_and_save(
        OneFile(DownloadedMedia(b"\x01\x02\x03binary", None, "run.sh")), "M", "file", "m3", tmp_path
    )
    assert unknown.ext == ".bin"
    assert unknown.display_name == "run.sh"


@pytest.mark.parametrize(
    ("data", "content_type", "ext"),
    [
        (JPG, None, ".jpg"),
        (PNG, "image/jpeg", ".png"),  # magic bytes win over a lying header
        (b"GIF89a....", None, ".gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", None, ".webp"),
        (b"#!AMR\n....", None, ".amr"),
        (b"\x00\x00\x00\x18ftypisom", None, ".mp4"),
        (b"%PDF-1.7", None, ".pdf"),
        (
            b"PK\x03\x04....",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ".docx",
        ),
        (b"PK\x03\x04....", "application/octet-stream", ".zip"),
        (b"plain words", "text/plain; charset=utf-8", ".txt"),
        (b"not an image", "image/png", None),  # binary formats must match their magic
        (b"????", None, None),
    ],
)
def test_sniff_extension(data: bytes, content_type: str | None, ext: str | None) -> None:
    assert sniff_extension(data, content_type) == ext


def test_image_that_is_not_an_image_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MediaSaveError):
        download_and_save(
            OneFile(DownloadedMedia(b"<html>nope</html>", "text/html", None)), "M", "image", "m4", tmp_path
        )
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_empty_and_oversized_downloads_are_refused(tmp_path: Path) -> None:
    with pytest.raises(MediaSaveError):
        download_and_save(OneFile(DownloadedMedia(b"", "image/png", None)), "M", "image", "m5", tmp_path)
    too_big = PNG + b"\x00" * (2 * 1024 * 1024)
    with pytest.raises(MediaSaveError):
        download_and_save(OneFile(DownloadedMedia(too_big, "image/png", None)), "M", "image", "m6", tmp_path)


def test_same_msgid_rewrites_the_same_file(tmp_path: Path) -> None:
    first = download_and_save(OneFile(DownloadedMedia(PNG, None, None)), "M", "image", "m7", tmp_path)
    second = download_and_save(OneFile(DownloadedMedia(PNG + b"1", None, None)), "M", "image", "m7", tmp_path)
    assert first.path == second.path
    assert second.path.read_bytes() == PNG + b"1"


def test_prune_media_removes_only_old_files(tmp_path: Path) -> None:
    old = tmp_path / "old.png"
    new = tmp_path / "new.png"
    sub = tmp_path / "subdir"
    for path in (old, new):
        path.write_bytes(b"x")
    sub.mkdir()
    now = time.time()
    os.utime(old, (now - 7200, now - 7200))
    assert prune_media(tmp_path, max_age_seconds=3600, now=now) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.png", "subdir"]
    assert prune_media(tmp_path / "missing", 10) == 0
