"""Does a customer's message ask for a human? The matching rule for hand-off keywords.

A whole short message, not any sentence that mentions a keyword: "人工" and "请转人工！" hand off,
"人工智能是什么" and "不要转人工" do not. The message and the keywords are compared after NFKC
(full-width → half-width), case folding, removing whitespace, punctuation and symbols, and removing
one polite prefix (请 / 我要 / 我想 / 帮我 / 给我 / 麻烦) and one polite suffix (吧 / 啊 / 呀 / 谢谢).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

POLITE_PREFIXES = ("麻烦", "我要", "我想", "帮我", "给我", "请")
POLITE_SUFFIXES = ("谢谢", "吧", "啊", "呀")
MAX_MESSAGE_CHARS = 40  # longer messages are questions, never hand-off requests


def normalize(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] not in ("Z", "P", "S", "C"))


def _strip_polite(text: str) -> str:
    for prefix in POLITE_PREFIXES:
        if text.startswith(prefix) and len(text) > len(prefix):
            text = text[len(prefix) :]
            break
    for suffix in POLITE_SUFFIXES:
        if text.endswith(suffix) and len(text) > len(suffix):
            text = text[: -len(suffix)]
            break
    return text


class KeywordMatcher:
    def __init__(self, keywords: Iterable[str]) -> None:
        self._keywords = frozenset(n for n in (normalize(str(k)) for k in keywords) if n)

    def __bool__(self) -> bool:
        return bool(self._keywords)

    def matches(self, message: str) -> bool:
        """True when the whole message is a hand-off request."""
        if not self._keywords or len(message) > MAX_MESSAGE_CHARS:
            return False
        text = normalize(message)
        return text in self._keywords or _strip_polite(text) in self._keywords
