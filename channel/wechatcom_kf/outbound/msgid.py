"""Deterministic ``msgid`` values for ``kf/send_msg`` and ``kf/send_msg_on_event``.

WeCom accepts a caller-chosen msgid (≤32 bytes, ``[0-9a-zA-Z_-]``) and refuses one already used on the
account. Deriving it from the inbound msgid and the part number makes a resend after a crash
recognisable as a duplicate instead of a second answer.
"""

from __future__ import annotations

import hashlib

MSGID_MAX_BYTES = 32
_HASH_HEX = 24  # 96 bits: collisions are out of reach for any realistic message volume
MAX_PART_NO = 999_999  # "r" + 24 hex + "_" + 6 digits = 32 bytes


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_HEX]


def make_msgid(inbound_msgid: str, part_no: int) -> str:
    """The msgid of reply part ``part_no`` (0-based) answering ``inbound_msgid``."""
    if not 0 <= part_no <= MAX_PART_NO:
        raise ValueError(f"part_no must be within 0..{MAX_PART_NO}, got {part_no}")
    return f"r{_digest(inbound_msgid)}_{part_no}"


def welcome_msgid(code: str) -> str:
    """The msgid of the welcome message sent with an ``enter_session`` welcome_code."""
    return f"w{_digest(code)}"


def notice_msgid(code: str) -> str:
    """The msgid of a notice sent with a ``service_state/trans`` msg_code (hand-off, queue)."""
    return f"n{_digest(code)}"
