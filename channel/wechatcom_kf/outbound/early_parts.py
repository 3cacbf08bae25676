"""The first words sooner: parts of a streamed answer sent while the model is still writing.

A bot that streams (this runtime's OpenAI-compatible and Dify bots with ``stream: true``) calls
``context[ON_PARTIAL_TEXT]`` with the answer so far. A part is sent as soon as it is *settled*: exactly
the part the whole answer will be cut into (``text.settled_parts`` on the Markdown-converted text, up to
the last line a following line can no longer change). So the customer gets the same parts, in the
same number, as without streaming — only sooner; the part that may carry the truncation marker waits
for the end. The final reply then sends what is left (``Delivery.send``). CoW's bots never call it:
in a CoW host nothing changes.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Protocol

from .markdown import markdown_to_plain
from .text import settled_parts

logger = logging.getLogger(__name__)

# The context key our runtime's streaming bots call (``models/streaming.py``; the channel imports
# nothing of its host but the CoW contract, so the name is repeated and a test keeps them in step).
ON_PARTIAL_TEXT = "on_partial_text"
PROSE_STEP = 64  # characters a line being written grows between two looks at it
_ENDS_WITH_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n\s*$")
# A line of prose that Markdown leaves as it is: no markup character anywhere, and no start that
# makes a list, quote, heading, rule, indented code or numbered item.
_MARKUP = r"\\`*_~\[\]()<>|#=+\-!&{}$^:@\"'"
_PROSE_LINE = re.compile(rf"[^\s\d{_MARKUP}][^\n{_MARKUP}]*")


def settled_answer_parts(
    so_far: str, *, max_bytes: int, budget: int, customer_text: Callable[[str], str] = str
) -> list[str]:
    """The parts of the final answer that ``so_far`` (a prefix of it) already decides.

    ``customer_text`` turns the bot's text into what the customer gets (the desk's preamble, the
    hand-off marker removed), as the final reply will be turned.
    """
    complete = so_far[: so_far.rfind("\n") + 1]  # a line still being written is not converted
    if not complete.strip():
        return []
    plain = markdown_to_plain(customer_text(complete))
    # The last converted line may still change (a setext underline or a table's delimiter row may
    # follow it), unless a blank line ended it: then no later line reaches back.
    paragraph_ended = _ENDS_WITH_BLANK_LINE.search(complete) is not None
    if not paragraph_ended:
        plain = plain[: plain.rfind("\n")] if "\n" in plain else ""
    settled = settled_parts(plain, max_bytes, budget)
    being_written = so_far[len(complete) :]
    if paragraph_ended and _PROSE_LINE.fullmatch(being_written):
        settled = max(settled, _before_prose_line(plain, being_written, max_bytes, budget), key=len)
    return settled


def _before_prose_line(plain: str, line: str, max_bytes: int, budget: int) -> list[str]:
    """The parts that end before ``line``, a paragraph of plain prose still being written.

    Such a line converts to itself, unless a later underline makes it a heading (``【…】``), and has no
    line break in it: so once it runs past a part's window, a cut at the paragraph break before it is
    decided. Each part must be the same with the line as it is and as a heading, and end before it.
    """
    stable = plain.rstrip()
    variants = [
        settled_parts(f"{stable}\n\n{shown}", max_bytes, budget)
        for shown in (line.rstrip(), f"【{line.rstrip()}")
    ]
    decided: list[str] = []
    cursor = 0
    for part, other in zip(*variants, strict=False):
        at = stable.find(part, cursor)
        if part != other or at < 0 or at + len(part) > len(stable):
            break
        decided.append(part)
        cursor = at + len(part)
    return decided


class Sink(Protocol):
    """Where settled parts go: the turn's delivery."""

    def early_budget(self) -> int | None:
        """The sends the whole answer may use, or None when the turn may not send early."""
        ...

    def send_early(self, index: int, text: str) -> bool:
        """Send part ``index``; False when the turn may not send any more (finished, refused)."""
        ...


class EarlyParts:
    """One turn's streamed answer: sends each newly settled part, in order, once."""

    def __init__(self, sink: Sink, *, max_bytes: int, customer_text: Callable[[str], str]) -> None:
        self._sink = sink
        self._max_bytes = max_bytes
        self._customer_text = customer_text
        self._lock = threading.Lock()
        self._seen = 0  # characters of complete lines already looked at
        self._looked_at = 0  # characters in all at the last look
        self.budget: int | None = None  # fixed when the first line is complete
        self.sent: list[str] = []
        self.stopped = False

    def on_text(self, so_far: str) -> None:
        """The bot's answer so far (called on the bot's thread, each time it grows)."""
        with self._lock:
            end = so_far.rfind("\n") + 1
            if self.stopped or (end <= self._seen and not self._worth_a_look(so_far)):
                return
            self._seen, self._looked_at = end, len(so_far)
            if self.budget is None:
                self.budget = self._sink.early_budget()
            if self.budget is None or len(self.sent) >= self.budget - 1:
                return  # nothing may go early, or only the last part is left (it may need the marker)
            settled = settled_answer_parts(
                so_far, max_bytes=self._max_bytes, budget=self.budget, customer_text=self._customer_text
            )
            for text in settled[len(self.sent) :]:
                if not self._sink.send_early(len(self.sent), text):
                    self.stopped = True
                    return
                self.sent.append(text)

    def _worth_a_look(self, so_far: str) -> bool:
        """A line still being written may settle a part (``_before_prose_line``) once it has run past
        the next part's window: look again every ``PROSE_STEP`` characters from then on, not at each
        chunk (a look converts the whole answer so far)."""
        if len(so_far) - self._looked_at < PROSE_STEP:
            return False
        sent_bytes = sum(len(part.encode("utf-8")) for part in self.sent)
        return len(so_far.encode("utf-8")) > sent_bytes + self._max_bytes
