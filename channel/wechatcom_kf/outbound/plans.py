"""Reply plans: a multi-part text reply and the parts WeCom accepted, kept until its turn is finished.

Saved before the first part is sent and updated after each accepted part, so a turn re-handled after
a crash sends only the parts whose answer was never seen, instead of asking the bot again (a new
answer's parts would mix with the sent ones) and instead of leaning on WeCom refusing reused msgids
(UNCONFIRMED) for every part. Media parts are not saved (an upload is not reproducible from a plan):
such a reply is answered anew after a crash. Stored as a value: ``{"parts": [...], "accepted": [...]}``;
a bare list of texts (the first version) reads as nothing accepted.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field

from ..store.base import KeyValues, StoreUnavailable
from .planner import OutboundPart

logger = logging.getLogger(__name__)

PLAN_KEY_PREFIX = "plan:"
PLAN_TTL_SECONDS = 48 * 3600.0  # WeCom's send window: a plan older than that cannot be sent anyway


@dataclass
class SavedPlan:
    texts: list[str]
    accepted: set[int] = field(default_factory=set)


def plan_key(base: str) -> str:
    return PLAN_KEY_PREFIX + base


def savable_texts(parts: list[OutboundPart], before: int = 0) -> list[str] | None:
    """The texts of a reply worth a plan: more than one part with the ``before`` parts of it already
    planned (sent early), all of them text."""
    if len(parts) + before < 2 or any(p.msgtype != "text" or p.upload is not None for p in parts):
        return None
    return [str(p.body.get("content", "")) for p in parts]


def decode(raw: str) -> SavedPlan | None:
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    texts, accepted = (doc, []) if isinstance(doc, list) else (doc.get("parts"), doc.get("accepted", []))
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return None
    if not isinstance(accepted, list) or not all(
        isinstance(i, int) and 0 <= i < len(texts) for i in accepted
    ):
        return None
    return SavedPlan(texts, set(accepted))


class Plans:
    """Plans in the key-value store; a store that stays down only costs the plan, never the reply."""

    def __init__(self, store: KeyValues) -> None:
        self._store = store

    def load(self, base: str) -> SavedPlan | None:
        try:
            raw = self._store.get_value(plan_key(base))
        except StoreUnavailable:
            return None
        if raw is None:
            return None
        plan = decode(raw)
        if plan is None:
            logger.warning("malformed reply plan ignored; the bot answers anew")
        return plan

    def save(self, base: str, plan: SavedPlan) -> bool:
        doc = {"parts": plan.texts, "accepted": sorted(plan.accepted)}
        try:
            self._store.set_value(plan_key(base), json.dumps(doc, ensure_ascii=False), PLAN_TTL_SECONDS)
        except StoreUnavailable:
            logger.warning("reply plan of %s not saved: the state store is unavailable", base)
            return False
        return True

    def drop(self, base: str) -> None:
        with contextlib.suppress(StoreUnavailable):  # it expires by itself; its turn is finished
            self._store.set_value(plan_key(base), None, None)
