"""The HTTP wire rules of the callback port on top of h11: what is refused, and the answers' heads.

h11 frames messages; these rules refuse what h11 accepts but WeCom never sends (both Content-Length
and Transfer-Encoding, HTTP versions other than 1.0/1.1, non-origin targets, heads over the limits).
"""

from __future__ import annotations

import time
from email.utils import formatdate

import h11

from .callback import BAD_REQUEST, TOO_LARGE, Response

MAX_HEAD_BYTES = 16 * 1024  # request line and headers, complete or not
MAX_HEADERS = 64

NOT_FOUND = Response(404, "not found")
METHOD_NOT_ALLOWED = Response(405, "method not allowed")
TOO_MANY_REQUESTS = Response(429, "too many requests")
INTERNAL_ERROR = Response(500, "internal error")
REASONS = {429: "Too Many Requests"}  # statuses callback.Response does not name
CONTINUE = h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
_VERSIONS = (b"1.1", b"1.0")


class HttpError(Exception):
    """Answer ``response``, close, and count the refusal as ``kind``."""

    def __init__(self, response: Response, kind: str, detail: str = "") -> None:
        super().__init__(response.status)
        self.response, self.kind, self.detail = response, kind, detail


_date_cache: tuple[int, bytes] = (0, b"")


def _http_date() -> bytes:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode("ascii"))
    return _date_cache[1]


def answer_headers(response: Response, body: bytes, close: bool) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"Content-Type", b"text/plain; charset=utf-8"),
        (b"Content-Length", str(len(body)).encode("ascii")),
        (b"Date", _http_date()),
    ]
    if response.status == 405:
        headers.append((b"Allow", b"GET, HEAD, POST"))
    if close:
        headers.append((b"Connection", b"close"))
    return headers


def check_head(request: h11.Request, max_body: int) -> None:
    """Refuse (``HttpError``) what h11 accepts but WeCom never sends, and bodies declared too large."""
    names = [name for name, _ in request.headers]
    size = len(request.target) + sum(len(name) + len(value) + 4 for name, value in request.headers)
    if request.http_version not in _VERSIONS or not request.target.startswith(b"/"):
        raise HttpError(BAD_REQUEST, "malformed request", "version or target")
    if size > MAX_HEAD_BYTES or len(names) > MAX_HEADERS:
        # h11 bounds only incomplete heads; this bounds complete ones
        raise HttpError(BAD_REQUEST, "malformed request", "head too large")
    if b"transfer-encoding" in names and b"content-length" in names:
        # RFC 9112 lets TE win; both at once is a smuggling probe here
        raise HttpError(BAD_REQUEST, "malformed request", "both Content-Length and Transfer-Encoding")
    for name, value in request.headers:
        if name == b"content-length" and int(value) > max_body:  # h11 validated the digits
            raise HttpError(TOO_LARGE, "body too large")
