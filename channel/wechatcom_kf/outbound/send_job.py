"""One ``send`` of a turn's answer: its planned parts, their msgids, what WeCom accepted of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .planner import OutboundPart

if TYPE_CHECKING:
    from .delivery import Delivery


@dataclass(eq=False)
class SendJob:
    """One ``send`` of a turn: its planned parts, their msgid base, the parts WeCom accepted."""

    delivery: Delivery
    base: str
    parts: list[OutboundPart]
    first: int = 0  # the turn's part number of parts[0]: msgid = make_msgid(base, first + i)
    accepted: set[int] = field(default_factory=set)
    saved: bool = False  # its accepted parts are recorded in the turn's saved plan
    failures: int = 0
    notice_sent: bool = False
    duplicates: int = 0
    done: bool = False  # sent, refused for good, or out of WeCom's window

    @property
    def unsent(self) -> int:
        return 0 if self.done else len(self.parts) - len(self.accepted)
