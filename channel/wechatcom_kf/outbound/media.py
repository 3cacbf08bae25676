"""Types and bounded I/O shared by the media converters."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import requests

logger = logging.getLogger(__name__)

MB = 1024 * 1024
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class MediaUpload:
    """Bytes to upload with ``media/upload`` before the part can be sent."""

    kind: str  # "image" | "voice" | "video" | "file"
    filename: str
    data: bytes = field(repr=False)
    content_type: str


class MediaProblem(Exception):
    """A media item cannot be sent; ``reason`` is what the log says, ``too_big`` whether it failed for
    its size (the planner turns it into the operator's text for the customer)."""

    def __init__(self, reason: str, *, too_big: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.too_big = too_big
        self.link = ""  # a URL the customer can open instead (a video too big to send)


def local_path(content: Any) -> str:
    """The local file a reply points at: a path, or a ``file://`` URL (CoW 2.x sends the images and
    videos it finds in a bot's text as ``file://`` URLs); "" for anything else."""
    if isinstance(content, os.PathLike):
        return os.fspath(content)
    if not isinstance(content, str):
        return ""
    if content.startswith("file://"):
        return url2pathname(unquote(urlsplit(content).path))
    return "" if content.startswith(("http://", "https://")) else content


def url_host(url: str) -> str:
    """Only the host of a URL, for log lines (paths and queries may carry signatures)."""
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


def download(url: str, *, max_bytes: int, timeout: float) -> bytes:
    """GET ``url`` with a timeout, streaming, stopping as soon as more than ``max_bytes`` arrive.

    Raises MediaProblem on any failure (``too_big`` when over the cap).
    """
    if urlsplit(url).scheme not in ("http", "https"):
        raise MediaProblem("not an http(s) URL")
    deadline = time.monotonic() + max(timeout * 3, timeout + 5)  # a slow drip must not hold a worker
    try:
        with requests.get(url, timeout=timeout, stream=True) as resp:
            if resp.status_code != 200:
                raise MediaProblem(f"HTTP {resp.status_code} from {url_host(url)}")
            declared = resp.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise MediaProblem(f"declared {declared} bytes > {max_bytes}", too_big=True)
            chunks: list[bytes] = []
            size = 0
            for chunk in resp.iter_content(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise MediaProblem(f"more than {max_bytes} bytes", too_big=True)
                if time.monotonic() > deadline:
                    raise MediaProblem(f"download from {url_host(url)} too slow")
                chunks.append(chunk)
    except requests.RequestException as exc:
        # The exception text may contain the full URL (signed query strings): log only its type.
        raise MediaProblem(f"download from {url_host(url)} failed: {type(exc).__name__}") from None
    return b"".join(chunks)


def read_path(path: str, *, max_bytes: int) -> bytes:
    """The bytes of a local file, refusing files over ``max_bytes`` before reading them."""
    try:
        size = os.path.getsize(path)
        if size > max_bytes:
            raise MediaProblem(f"file of {size} bytes > {max_bytes}", too_big=True)
        with open(path, "rb") as fh:
            return fh.read(max_bytes + 1)
    except OSError as exc:
        raise MediaProblem(f"cannot read file: {type(exc).__name__}") from None


def read_stream(stream: Any, *, max_bytes: int) -> bytes:
    """The bytes of a file-like object, reading at most ``max_bytes + 1``."""
    try:
        data = stream.read(max_bytes + 1)
        if not data and hasattr(stream, "seek"):
            # CoW plugins often hand over a BytesIO they just wrote, positioned at its end.
            stream.seek(0)
            data = stream.read(max_bytes + 1)
    except (OSError, ValueError) as exc:
        raise MediaProblem(f"cannot read stream: {type(exc).__name__}") from None
    if not isinstance(data, bytes | bytearray):
        raise MediaProblem(f"stream returned {type(data).__name__}, not bytes")
    if len(data) > max_bytes:
        raise MediaProblem(f"stream over {max_bytes} bytes", too_big=True)
    return bytes(data)
