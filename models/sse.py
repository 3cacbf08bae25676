"""Server-sent events (text/event-stream) read from a byte stream, bounded.

Format: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
Both OpenAI-compatible chat streams and Dify's chat-messages stream use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

MAX_EVENT_BYTES = 1024 * 1024  # one event's data; a longer one is a broken or hostile stream


class SseError(ValueError):
    """The stream broke the format or a bound."""


@dataclass(frozen=True)
class SseEvent:
    event: str  # "message" when the stream named none
    data: str


def iter_lines(chunks: Iterable[bytes], max_line: int = MAX_EVENT_BYTES) -> Iterator[bytes]:
    """Lines split at CRLF, LF or CR, also when a CRLF pair straddles two chunks."""
    buffer = b""
    skip_lf = False  # the previous chunk ended in CR: a leading LF belongs to it
    for chunk in chunks:
        if not chunk:
            continue
        if skip_lf and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        skip_lf = chunk.endswith(b"\r")
        buffer += chunk
        *lines, buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        yield from lines
        if len(buffer) > max_line:
            raise SseError("line too long")
    if buffer:
        yield buffer


def iter_events(chunks: Iterable[bytes], max_bytes: int = MAX_EVENT_BYTES) -> Iterator[SseEvent]:
    """Events in arrival order; comments and ``id``/``retry`` fields are dropped (not needed here)."""
    name, size = "", 0
    data: list[str] = []
    for raw in iter_lines(chunks, max_bytes):
        line = raw.decode("utf-8", "replace")
        if not line:
            if data:
                yield SseEvent(name or "message", "\n".join(data))
            name, data, size = "", [], 0
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            size += len(value)
            if size > max_bytes:
                raise SseError("event too large")
            data.append(value)
    # As the format says, an event the stream ended before the blank line of is not dispatched.
