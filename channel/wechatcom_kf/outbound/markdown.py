"""Markdown → plain text for WeChat, which shows Markdown markers literally.

Language models answer in Markdown. The conversion keeps every word, URL and line of code and drops
only the markup; it is deliberately conservative so ordinary Chinese text, ``snake_case``, URLs with
``_`` or ``*`` and arithmetic like ``2*3*4`` pass through unchanged.
"""

from __future__ import annotations

import re

# Private-use characters frame placeholders for spans that must not be touched by emphasis rules.
_PH_OPEN, _PH_CLOSE = "\ue000", "\ue001"
_PH_RE = re.compile(f"{_PH_OPEN}(\\d+){_PH_CLOSE}")

_FENCE_RE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_HEADING_RE = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_SETEXT_RE = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_HR_RE = re.compile(r"^\s{0,3}([-*_])(?:\s*\1){2,}\s*$")
_QUOTE_RE = re.compile(r"^\s{0,3}(?:>\s?)+")
_BULLET_RE = re.compile(r"^(\s*)[-*+]\s+(?:\[([ xX])\]\s+)?(.*)$")
_ORDERED_RE = re.compile(r"^(\s*)(\d{1,9})[.)]\s+(.*)$")
_TABLE_SEP_RE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")

_ESCAPE_RE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|~>])")
_CODE_SPAN_RE = re.compile(r"(`+)(.+?)\1")
_IMAGE_RE = re.compile(r"!\[([^\]\n]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"\n]*\")?\s*\)")
_LINK_RE = re.compile(r"\[([^\]\n]+)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"\n]*\")?\s*\)")
_AUTOLINK_RE = re.compile(r"<((?:https?|mailto):[^\s>]+)>")
_URL_RE = re.compile(r"(?:https?|ftp)://[^\s<>\u3000-\u303f\u4e00-\u9fff\uff00-\uffef\ue000\ue001]+")
_URL_TRAILING = ".,;:!?)]'\""
_BR_RE = re.compile(r"<br\s*/?>", re.IGNORECASE)

# Emphasis: the marker must hug the text, and an ASCII letter or digit outside the marker rules out
# intraword use (2*3*4, 2**10, snake_case) while Chinese text around the markers still works.
_EMPHASIS: tuple[re.Pattern[str], ...] = (
    re.compile(r"(?<![A-Za-z0-9*\\])\*\*(?=\S)(.+?)(?<=\S)\*\*(?![A-Za-z0-9*])"),
    # __x__ around a bare identifier is a dunder name (__init__), not emphasis.
    re.compile(r"(?<![A-Za-z0-9_\\])__(?![A-Za-z0-9_]+__)(?=\S)(.+?)(?<=\S)__(?![A-Za-z0-9_])"),
    re.compile(r"(?<![A-Za-z0-9*\\])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![A-Za-z0-9*])"),
    re.compile(r"(?<![A-Za-z0-9_\\])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![A-Za-z0-9_])"),
    re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"),
)


class _Protector:
    """Swaps spans for placeholders and back, so later rules cannot see inside them."""

    def __init__(self) -> None:
        self.saved: list[str] = []

    def keep(self, text: str) -> str:
        self.saved.append(text)
        return f"{_PH_OPEN}{len(self.saved) - 1}{_PH_CLOSE}"

    def restore(self, text: str) -> str:
        for _ in range(4):  # placeholders can nest (a URL inside link text); depth is tiny
            if _PH_OPEN not in text:
                break
            text = _PH_RE.sub(lambda m: self.saved[int(m.group(1))], text)
        return text


def _protect_url(match: re.Match[str], keep: _Protector) -> str:
    url = match.group(0)
    tail = ""
    while url and url[-1] in _URL_TRAILING and not (url[-1] == ")" and url.count("(") >= url.count(")")):
        tail = url[-1] + tail
        url = url[:-1]
    return keep.keep(url) + tail


def _link(match: re.Match[str], keep: _Protector) -> str:
    label, url = match.group(1).strip(), match.group(2)
    if not label or label == url:
        return keep.keep(url)
    return f"{label}（{keep.keep(url)}）"


def _inline(text: str) -> str:
    """Remove inline markup from one line of prose."""
    keep = _Protector()
    text = text.replace(_PH_OPEN, "").replace(_PH_CLOSE, "")
    text = _ESCAPE_RE.sub(lambda m: keep.keep(m.group(1)), text)
    text = _CODE_SPAN_RE.sub(lambda m: keep.keep(m.group(2).strip() or m.group(2)), text)
    text = _IMAGE_RE.sub(lambda m: keep.keep(m.group(2)), text)
    text = _LINK_RE.sub(lambda m: _link(m, keep), text)
    text = _AUTOLINK_RE.sub(lambda m: keep.keep(m.group(1)), text)
    text = _URL_RE.sub(lambda m: _protect_url(m, keep), text)
    text = _BR_RE.sub("\n", text)
    for _ in range(3):  # nested emphasis (***x***) needs a second pass; bounded
        before = text
        for pattern in _EMPHASIS:
            text = pattern.sub(r"\1", text)
        if text == before:
            break
    return keep.restore(text)


def _table_row(line: str) -> str:
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return " | ".join(_inline(cell.strip()) for cell in cells)


def _block_line(line: str) -> str | None:
    """Convert one non-code line; None drops it."""
    if _HR_RE.match(line):
        return ""
    quote = _QUOTE_RE.match(line)
    if quote:
        line = line[quote.end() :]
    heading = _HEADING_RE.match(line)
    if heading:
        title = _inline(heading.group(2))
        return f"【{title}】" if len(heading.group(1)) <= 3 and title else title
    bullet = _BULLET_RE.match(line)
    if bullet:
        indent = "  " * (len(bullet.group(1).expandtabs(4)) // 2)
        box = {" ": "☐ ", "x": "☑ ", "X": "☑ "}.get(bullet.group(2) or "", "")
        return f"{indent}• {box}{_inline(bullet.group(3))}"
    ordered = _ORDERED_RE.match(line)
    if ordered:
        indent = "  " * (len(ordered.group(1).expandtabs(4)) // 2)
        return f"{indent}{ordered.group(2)}. {_inline(ordered.group(3))}"
    return _inline(line)


def _table_lines(lines: list[str], i: int) -> int:
    """Number of lines of the table starting at ``lines[i]`` (0 when none starts there)."""
    if "|" not in lines[i] or i + 1 >= len(lines) or not _TABLE_SEP_RE.match(lines[i + 1]):
        return 0
    if "|" not in lines[i + 1]:
        return 0
    end = i + 2
    while end < len(lines) and "|" in lines[end] and lines[end].strip():
        end += 1
    return end - i


def markdown_to_plain(text: str) -> str:
    """Plain text a WeChat user reads comfortably, from a Markdown answer."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out: list[str] = []
    fence: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        fence_match = _FENCE_RE.match(line)
        if fence is not None:
            closing = fence_match.group(1) if fence_match else ""
            if closing.startswith(fence[0]) and len(closing) >= len(fence):
                fence = None
            else:
                out.append(line.rstrip())
            i += 1
            continue
        if fence_match:
            fence = fence_match.group(1)
            i += 1
            continue
        table = _table_lines(lines, i)
        if table:
            out.append(_table_row(lines[i]))
            out.extend(_table_row(row) for row in lines[i + 2 : i + table])
            i += table
            continue
        if _SETEXT_RE.match(line) and out and out[-1].strip() and not _HR_RE.match(line):
            out[-1] = f"【{out[-1].strip()}】"
            i += 1
            continue
        converted = _block_line(line)
        if converted is not None:
            out.append(converted.rstrip())
        i += 1
    plain = "\n".join(out)
    plain = re.sub(r"\n{3,}", "\n\n", plain)
    return plain.strip()
