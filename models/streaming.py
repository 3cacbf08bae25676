"""Reading a streamed answer: events off the wire within bounds, and the partial-text seam.

A bot that streams calls ``context[ON_PARTIAL_TEXT]`` (when a caller put a callable there) with the
answer accumulated so far, each time it grows. The final Reply is the same as without streaming.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests
import urllib3

from bridge.context import Context
from models.openai_http import OpenAIRequestError
from models.sse import SseError, SseEvent, iter_events

logger = logging.getLogger(__name__)

# The context key of the optional callable ``(text_so_far: str) -> None``.
ON_PARTIAL_TEXT = "on_partial_text"
MAX_ANSWER_CHARS = 200_000  # far above any sendable reply; a longer stream is cut off as broken
READ_BYTES = 8192
DEADLINE_FACTOR = 5  # a whole stream may take this many times request_timeout


def partial_callback(context: Context | None) -> Callable[[str], None] | None:
    """The caller's partial-text callable from ``context``, or None."""
    if context is None:
        return None
    found = context.get(ON_PARTIAL_TEXT)
    return found if callable(found) else None


def read_events(resp: requests.Response, timeout: float) -> Iterator[SseEvent]:
    """The events of a streamed response, which is closed afterwards.

    Each read waits at most the client's timeout (requests' read timeout); the whole stream at most
    ``DEADLINE_FACTOR`` times that, so a trickling server cannot hold a worker for ever. Failures come
    out as OpenAIRequestError, like those of the request itself.
    """
    deadline = time.monotonic() + DEADLINE_FACTOR * max(1.0, timeout)
    try:
        for event in iter_events(_arriving(resp)):
            yield event
            if time.monotonic() > deadline:
                raise OpenAIRequestError("timeout", resp.status_code)
    except (requests.Timeout, urllib3.exceptions.TimeoutError):
        raise OpenAIRequestError("timeout", resp.status_code) from None
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:  # a reset
        logger.debug("stream broke: %s", type(exc).__name__)
        raise OpenAIRequestError("connection", resp.status_code) from None
    except SseError:
        raise OpenAIRequestError("bad_response", resp.status_code) from None
    finally:
        resp.close()


def _arriving(resp: requests.Response) -> Iterator[bytes]:
    """The body as it arrives. ``iter_content(None)`` waits for the whole body unless the server
    sends it chunked; a server that ends its stream by closing the connection is streamed too."""
    read1 = getattr(resp.raw, "read1", None)
    if read1 is None:
        yield from resp.iter_content(chunk_size=None)
        return
    while True:
        data = read1(READ_BYTES, decode_content=True)
        if not data:
            return
        yield data


class AnswerText:
    """The answer as it grows; tells the partial-text callable, whose failures never break it."""

    def __init__(self, callback: Callable[[str], None] | None, status: int | None = None) -> None:
        self._callback = callback
        self._status = status
        self._parts: list[str] = []
        self._size = 0

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def add(self, delta: Any) -> None:
        if not isinstance(delta, str) or not delta:
            return
        self._size += len(delta)
        if self._size > MAX_ANSWER_CHARS:
            raise OpenAIRequestError("bad_response", self._status)
        self._parts.append(delta)
        self._tell()

    def replace(self, text: Any) -> None:
        """The server replaced what it sent so far (Dify's message_replace, e.g. moderation)."""
        self._parts = [text] if isinstance(text, str) else []
        self._size = len(self.text)
        self._tell()

    def _tell(self) -> None:
        if self._callback is None:
            return
        try:
            self._callback(self.text)
        except Exception:  # the seam's user must not cost the customer the answer
            logger.exception("on_partial_text callback failed")
