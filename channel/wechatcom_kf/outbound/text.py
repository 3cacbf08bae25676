"""Split a reply text into ``kf/send_msg`` text parts.

A KF text message holds at most 2048 UTF-8 bytes and a customer message buys at most 5 sends, so a long
answer is cut at the most natural boundary that keeps each part full enough, and an answer that needs
more parts than the budget ends with a visible truncation marker instead of failing at part 6.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right

TRUNCATION_MARKER = "…（内容过长，已截断）"

# Boundary patterns, best first. A match's end is where the part ends. ASCII sentence and comma marks
# count only before whitespace so that "3.14", "example.com" and "1,000" are never cut.
_CLOSERS = "”’」』）)】\\]\"'"
_BOUNDARIES: tuple[re.Pattern[str], ...] = (
    re.compile(r"\n[ \t\r\f\v]*\n\s*"),
    re.compile(r"\n"),
    re.compile(rf"[。！？；…]+[{_CLOSERS}]*|[.!?;]+[{_CLOSERS}]*(?=\s)"),
    re.compile(rf"[，、：,:][{_CLOSERS}]*(?=\S)|[，、：][{_CLOSERS}]*|[,:](?=\s)"),
    re.compile(r"\s+"),
)
# A boundary earlier than this fraction of the window would waste budget on a short part.
_MIN_FILL = 0.5


def _is_extender(ch: str) -> bool:
    """True for code points that belong to the cluster of the character before them."""
    cp = ord(ch)
    return (
        unicodedata.combining(ch) != 0
        or unicodedata.category(ch) in ("Mn", "Me", "Mc")
        or 0xFE00 <= cp <= 0xFE0F  # variation selectors
        or cp == 0x200D  # zero width joiner
        or 0x1F3FB <= cp <= 0x1F3FF  # skin tone modifiers
        or 0xE0020 <= cp <= 0xE007F  # emoji tag sequences (subdivision flags)
        or 0xE0100 <= cp <= 0xE01EF
    )


def _is_regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _cluster_boundary(text: str, i: int) -> bool:
    """Whether cutting ``text`` before index ``i`` keeps every user-visible character whole."""
    if i <= 0 or i >= len(text):
        return True
    prev, cur = text[i - 1], text[i]
    if _is_extender(cur) or prev == "\u200d" or (prev == "\r" and cur == "\n"):
        return False
    if _is_regional(cur) and _is_regional(prev):
        run = 0
        j = i - 1
        while j >= 0 and _is_regional(text[j]):
            run += 1
            j -= 1
        return run % 2 == 0  # flags are pairs; cut only between two pairs
    return True


def _sanitize(text: str) -> str:
    # Lone surrogates cannot be encoded as UTF-8; WeCom would reject the whole message.
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class _Splitter:
    def __init__(self, text: str, max_bytes: int) -> None:
        self.text = text
        self.max_bytes = max_bytes
        offsets = [0]
        total = 0
        for ch in text:
            total += len(ch.encode("utf-8"))
            offsets.append(total)
        self.offsets = offsets

    def skip_space(self, start: int) -> int:
        while start < len(self.text) and self.text[start].isspace():
            start += 1
        return start

    def fits(self, start: int, limit: int) -> bool:
        return self.offsets[-1] - self.offsets[start] <= limit

    def cut(self, start: int, limit: int) -> tuple[int, int]:
        """(end of the part, start of the rest) for a part of at most ``limit`` bytes from ``start``."""
        max_end = bisect_right(self.offsets, self.offsets[start] + limit) - 1
        floor = start + max(1, int((max_end - start) * _MIN_FILL))
        for pattern in _BOUNDARIES:
            best: re.Match[str] | None = None
            for match in pattern.finditer(self.text, start, min(max_end + 1, len(self.text))):
                if match.end() <= max_end and match.end() > start:
                    best = match
            if best is not None and best.end() >= floor:
                return best.end(), best.end()
        end = max_end
        while end > start and not _cluster_boundary(self.text, end):
            end -= 1
        if end == start:  # one cluster longer than the part: fall back to a code point boundary
            end = max_end
        return end, end


def _bounded(text: str, capacity: int) -> str:
    """A prefix of ``text`` holding more than ``capacity`` non-space characters (or all of it).

    Content beyond that cannot be sent anyway; bounding the input bounds the work, and keeping more
    visible characters than fit guarantees the truncation is still detected and marked.
    """
    if len(text) <= capacity:
        return text
    seen = 0
    for index, ch in enumerate(text):
        if not ch.isspace():
            seen += 1
            if seen > capacity:
                return text[: index + 1]
    return text


def split_text(
    text: str,
    max_bytes: int = 2048,
    max_parts: int = 5,
    marker: str = TRUNCATION_MARKER,
) -> list[str]:
    """Split ``text`` into at most ``max_parts`` non-empty parts of at most ``max_bytes`` UTF-8 bytes.

    Boundaries are preferred in this order: paragraph, line, sentence end, comma, whitespace, character.
    When the text needs more than ``max_parts`` parts, the last part ends with ``marker``.
    """
    marker_bytes = len(marker.encode("utf-8"))
    if max_parts < 1:
        raise ValueError("max_parts must be at least 1")
    if max_bytes < marker_bytes + 8:
        raise ValueError(f"max_bytes must be at least {marker_bytes + 8} to hold the truncation marker")
    text = _sanitize(_bounded(text, max_bytes * max_parts)).strip()
    if not text:
        return []
    splitter = _Splitter(text, max_bytes)
    parts: list[str] = []
    start = 0
    while start < len(text):
        if splitter.fits(start, max_bytes):
            parts.append(text[start:].strip())
            break
        if len(parts) == max_parts - 1:
            end, _ = splitter.cut(start, max_bytes - marker_bytes)
            parts.append(text[start:end].strip() + marker)
            break
        end, rest = splitter.cut(start, max_bytes)
        parts.append(text[start:end].strip())
        start = splitter.skip_space(rest)
    return [part for part in parts if part]


def settled_parts(known: str, max_bytes: int = 2048, max_parts: int = 5) -> list[str]:
    """The first parts of ``split_text(known + anything)``, whatever ``anything`` is.

    For a text still being written (a streamed answer): a part is settled once the text runs past its
    window, so the boundary chosen in it cannot change; the part that may carry the truncation marker
    (part ``max_parts``) and the last, still growing one never are. Mirrors ``split_text``'s loop.
    """
    text = _sanitize(known).strip()
    splitter = _Splitter(text, max_bytes)
    parts: list[str] = []
    start = 0
    while start < len(text) and len(parts) < max_parts - 1 and not splitter.fits(start, max_bytes):
        window_end = bisect_right(splitter.offsets, splitter.offsets[start] + max_bytes) - 1
        if window_end + 2 >= len(text):  # the boundary search may look one character past the window
            break
        end, rest = splitter.cut(start, max_bytes)
        parts.append(text[start:end].strip())
        start = splitter.skip_space(rest)
    return [part for part in parts if part]
