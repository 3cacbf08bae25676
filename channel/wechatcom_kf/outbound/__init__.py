"""Outbound side of the channel: a CoW Reply → KF messages within WeCom's limits → ``kf/send_msg``."""

from .markdown import markdown_to_plain
from .media import MediaUpload
from .msgid import make_msgid, welcome_msgid
from .planner import OutboundLimits, OutboundPart, plan_reply
from .sender import Accepted, PartSender
from .text import TRUNCATION_MARKER, split_text

__all__ = [
    "TRUNCATION_MARKER",
    "Accepted",
    "MediaUpload",
    "OutboundLimits",
    "OutboundPart",
    "PartSender",
    "make_msgid",
    "markdown_to_plain",
    "plan_reply",
    "split_text",
    "welcome_msgid",
]
