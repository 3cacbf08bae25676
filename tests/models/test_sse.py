"""The server-sent events reader: line endings, multi-line data, comments, bounds."""

from __future__ import annotations

import pytest

from models.sse import SseError, SseEvent, iter_events, iter_lines


def events(*chunks: bytes, **kwargs) -> list[SseEvent]:
    return list(iter_events(chunks, **kwargs))


def test_events_with_names_multi_line_data_and_comments():
    stream = b': keep-alive\n\nevent: delta\ndata: {"a":\ndata:  1}\n\ndata:plain\n\n'
    assert events(stream) == [SseEvent("delta", '{"a":\n 1}'), SseEvent("message", "plain")]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending_and_every_split_point_gives_the_same_events(ending):
    stream = ending.join([b"data: one", b"", b"event: x", b"data: two", b"", b""])
    expected = [SseEvent("message", "one"), SseEvent("x", "two")]
    for cut in range(len(stream) + 1):
        assert events(stream[:cut], stream[cut:]) == expected, cut


def test_crlf_split_across_chunks_is_one_line_ending():
    assert list(iter_lines([b"data: a\r", b"\ndata: b\r\n"])) == [b"data: a", b"data: b"]


def test_an_event_cut_off_before_its_blank_line_is_not_delivered():
    assert events(b"data: complete\n\ndata: half") == [SseEvent("message", "complete")]


def test_bounds_on_one_event_and_one_line():
    with pytest.raises(SseError):
        events(b"data: " + b"x" * 100 + b"\ndata: " + b"y" * 100 + b"\n\n", max_bytes=150)
    with pytest.raises(SseError):
        list(iter_lines([b"z" * 200], max_line=100))
