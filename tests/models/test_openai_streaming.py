"""Streaming in the OpenAI-compatible bot (``stream: true``): same reply, the partial-text seam,
the same retries and errors, and streams that break."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bridge.context import Context, ContextType
from bridge.reply import ReplyType
from models.openai_chat_bot import OpenAIChatBot
from models.openai_http import OpenAIHttpClient
from models.streaming import ON_PARTIAL_TEXT
from sandbox.fake_openai import FakeOpenAIServer

API_KEY = "sk-stream-SECRET-42"
ANSWER = "这是一个比较长的回答，用来检查流式输出是否按顺序拼接。"


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(reply_fn=lambda body: ANSWER) as server:
        yield server


def make_bot(api_base: str, **kwargs) -> OpenAIChatBot:
    client = OpenAIHttpClient(API_KEY, api_base, timeout=5, backoff_base=0.01, backoff_cap=0.02)
    return OpenAIChatBot(client, **kwargs)


def ctx(text: str, **extra) -> Context:
    return Context(ContextType.TEXT, text, {"session_id": "s1", **extra})


def test_streamed_reply_equals_the_unstreamed_one_and_the_seam_sees_it_grow(fake):
    seen: list[str] = []
    streamed = make_bot(fake.base_url, stream=True).reply(
        "你好", ctx("你好", **{ON_PARTIAL_TEXT: seen.append})
    )
    plain = make_bot(fake.base_url).reply("你好", ctx("你好"))
    assert (streamed.type, streamed.content) == (plain.type, plain.content) == (ReplyType.TEXT, ANSWER)
    assert fake.requests[0]["stream"] is True and "stream" not in fake.requests[1]
    assert len(seen) >= 5 and seen[-1] == ANSWER
    assert all(ANSWER.startswith(text) for text in seen)
    assert [len(text) for text in seen] == sorted({len(text) for text in seen})  # strictly growing


def test_streaming_without_a_callback_and_the_memory_keeps_the_turn(fake):
    bot = make_bot(fake.base_url, stream=True)
    bot.reply("第一句", ctx("第一句"))
    bot.reply("第二句", ctx("第二句"))
    assert [m["content"] for m in fake.requests[-1]["messages"]] == ["第一句", ANSWER, "第二句"]


def test_rate_limit_before_the_stream_is_retried_like_today(fake):
    fake.fail_next(2, status=429)
    reply = make_bot(fake.base_url, stream=True).reply("你好", ctx("你好"))
    assert (reply.type, reply.content) == (ReplyType.TEXT, ANSWER)
    assert fake.stats()["calls"] == 3


def test_errors_are_the_same_error_replies_as_today(fake):
    fake.fail_next(3, status=500)
    reply = make_bot(fake.base_url, stream=True).reply("你好", ctx("你好"))
    assert reply.type == ReplyType.ERROR and API_KEY not in reply.content
    fake.reset()
    fake.fail_next(1, status=401)  # not retried, as today
    assert make_bot(fake.base_url, stream=True).reply("你好", ctx("你好")).type == ReplyType.ERROR
    assert fake.stats()["calls"] == 1


class _BrokenStream(BaseHTTPRequestHandler):
    """Streams two chunks, then either closes without [DONE] or reports an error event."""

    mode = "cut"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b'data: {"choices":[{"delta":{"content":"half an "}}]}\n\n')
        if self.mode == "error":
            self.wfile.write(b'data: {"error":{"message":"overloaded","code":"server_error"}}\n\n')
        elif self.mode == "garbage":
            self.wfile.write(b"data: {not json\n\n")


@pytest.mark.parametrize("mode", ["cut", "error", "garbage"])
def test_a_broken_stream_is_an_error_not_half_an_answer(mode):
    handler = type("_Handler", (_BrokenStream,), {"mode": mode})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        seen: list[str] = []
        bot = make_bot(f"http://127.0.0.1:{server.server_address[1]}/v1", stream=True)
        reply = bot.reply("你好", ctx("你好", **{ON_PARTIAL_TEXT: seen.append}))
    finally:
        server.shutdown()
        server.server_close()
    assert reply.type == ReplyType.ERROR
    assert seen == ["half an "]  # the seam saw the part that came; the reply is not it
    assert len(bot.memory) == 0  # nothing remembered for a failed turn


def test_create_bot_reads_the_stream_setting(monkeypatch, fake):
    from config import conf
    from models.bot_factory import create_bot

    cfg = conf()
    monkeypatch.setitem(cfg, "open_ai_api_key", "sk-x")
    monkeypatch.setitem(cfg, "open_ai_api_base", fake.base_url)
    monkeypatch.setitem(cfg, "stream", True)
    bot = create_bot("openai")
    assert isinstance(bot, OpenAIChatBot) and bot.stream
    assert bot.reply("你好", ctx("你好")).content == ANSWER
    assert fake.requests[-1]["stream"] is True
