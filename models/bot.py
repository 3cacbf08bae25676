"""CoW's Bot base: one call from a query (plus its context) to a reply."""

from __future__ import annotations

from bridge.context import Context
from bridge.reply import Reply


class Bot:
    """Subclasses answer one query; they must return a Reply (ERROR type on failure), never raise."""

    def reply(self, query: str, context: Context | None = None) -> Reply:
        raise NotImplementedError
