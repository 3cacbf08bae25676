import base64
import io
import logging
import socket
import threading
import time

import pytest
from PIL import Image

from bridge.context import Context, ContextType
from bridge.reply import ReplyType
from models.openai_chat_bot import OpenAIChatBot
from models.openai_http import OpenAIHttpClient
from sandbox.fake_openai import FakeOpenAIServer

API_KEY = "sk-test-SECRET-0123456789"


@pytest.fixture
def fake():
    with FakeOpenAIServer() as server:
        yield server


def make_bot(api_base: str, *, timeout: float = 5.0, max_attempts: int = 3, **kwargs) -> OpenAIChatBot:
    # A short backoff keeps the retry tests fast.
    client = OpenAIHttpClient(
        API_KEY, api_base, timeout=timeout, max_attempts=max_attempts, backoff_base=0.01, backoff_cap=0.05
    )
    return OpenAIChatBot(client, **kwargs)


def ctx(text: str, session: str = "u1", **extra) -> Context:
    return Context(ContextType.TEXT, text, {"session_id": session, **extra})


def user_texts(body: dict) -> list:
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_answer_system_prompt_and_auth(fake):
    bot = make_bot(fake.base_url, system_prompt="你是客服小助手", model="m-1", temperature=0.2)
    reply = bot.reply("你好", ctx("你好"))
    assert (reply.type, reply.content) == (ReplyType.TEXT, "答：你好")
    body = fake.requests[-1]
    assert body["model"] == "m-1"
    assert body["temperature"] == 0.2
    assert body["messages"][0] == {"role": "system", "content": "你是客服小助手"}
    assert body["messages"][-1] == {"role": "user", "content": "你好"}


def test_history_is_per_session_and_bounded_by_turns(fake):
    bot = make_bot(fake.base_url, max_history_turns=2)
    for i in range(4):
        bot.reply(f"q{i}", ctx(f"q{i}", "alice"))
    bot.reply("other", ctx("other", "bob"))
    bot.reply("q4", ctx("q4", "alice"))
    assert user_texts(fake.requests[-2]) == ["other"]
    last = fake.requests[-1]["messages"]
    assert [m["content"] for m in last] == ["q2", "答：q2", "q3", "答：q3", "q4"]


def test_history_is_bounded_by_size(fake):
    bot = make_bot(fake.base_url, max_history_turns=100, max_history_chars=60)
    for i in range(5):
        bot.reply(f"{i}" * 10, ctx(f"{i}" * 10))  # each turn: 10 + 12 characters
    bot.reply("last", ctx("last"))
    texts = user_texts(fake.requests[-1])
    assert texts == ["3" * 10, "4" * 10, "last"]
    assert sum(len(m["content"]) for m in fake.requests[-1]["messages"]) <= 60


def test_idle_session_forgets(fake):
    now = [0.0]
    bot = make_bot(fake.base_url, expires_in_seconds=3600, clock=lambda: now[0])
    bot.reply("记住我", ctx("记住我"))
    now[0] += 3599
    bot.reply("还在吗", ctx("还在吗"))
    assert user_texts(fake.requests[-1]) == ["记住我", "还在吗"]
    now[0] += 3601
    bot.reply("又来了", ctx("又来了"))
    assert user_texts(fake.requests[-1]) == ["又来了"]
    assert len(bot.memory) == 1


def test_reset_command_clears_memory(fake):
    bot = make_bot(fake.base_url)
    bot.reply("a", ctx("a"))
    reply = bot.reply("#清除记忆", ctx("#清除记忆"))
    assert reply.type == ReplyType.INFO
    bot.reply("b", ctx("b"))
    assert user_texts(fake.requests[-1]) == ["b"]
    assert len(fake.requests) == 2  # the command itself never reached the model


def test_cow_sessions_clear_one_customer_or_all(fake):
    # What upstream plugins call: godcmd's #reset and #resetall (dungeon's clear_session too).
    bot = make_bot(fake.base_url)
    for session in ("alice", "bob"):
        bot.reply("q", ctx("q", session))
    bot.sessions.clear_session("alice")
    bot.reply("again", ctx("again", "alice"))
    assert user_texts(fake.requests[-1]) == ["again"]
    bot.reply("again", ctx("again", "bob"))
    assert user_texts(fake.requests[-1]) == ["q", "again"]
    bot.sessions.clear_session("nobody")  # unknown session: nothing to do, no error
    bot.sessions.clear_all_session()
    assert len(bot.memory) == 0
    bot.reply("fresh", ctx("fresh", "bob"))
    assert user_texts(fake.requests[-1]) == ["fresh"]


def test_retries_429_then_succeeds(fake):
    fake.fail_next(2, 429)
    reply = make_bot(fake.base_url, max_attempts=3).reply("你好", ctx("你好"))
    assert (reply.type, reply.content) == (ReplyType.TEXT, "答：你好")
    assert fake.calls == 3


def test_gives_up_after_max_attempts_on_500(fake):
    fake.fail_next(10, 500)
    reply = make_bot(fake.base_url, max_attempts=2).reply("你好", ctx("你好"))
    assert reply.type == ReplyType.ERROR
    assert "模型服务" in reply.content
    assert fake.calls == 2


def test_auth_error_is_not_retried(fake):
    fake.fail_next(1, 401)
    reply = make_bot(fake.base_url).reply("你好", ctx("你好"))
    assert reply.type == ReplyType.ERROR
    assert "API Key" in reply.content
    assert fake.calls == 1


def test_timeout_gives_error_reply(fake):
    fake.latency = 2.0
    reply = make_bot(fake.base_url, timeout=0.2, max_attempts=2).reply("你好", ctx("你好"))
    assert reply.type == ReplyType.ERROR
    assert "超时" in reply.content
    assert fake.calls == 2


def test_server_down_gives_error_without_leaking_secrets(caplog):
    base = f"http://user:proxypass@127.0.0.1:{closed_port()}/v1"
    caplog.set_level(logging.DEBUG)
    reply = make_bot(base, max_attempts=2).reply("你好", ctx("你好"))
    assert reply.type == ReplyType.ERROR
    assert "无法连接" in reply.content
    for secret in (API_KEY, "proxypass"):
        assert secret not in caplog.text
    for detail in (API_KEY, "proxypass", "127.0.0.1", "http"):
        assert detail not in reply.content
    assert "Traceback" not in caplog.text


def png_file(tmp_path, name="pic.png", fmt="PNG"):
    path = tmp_path / name
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(buf, fmt)
    path.write_bytes(buf.getvalue())
    return path


def test_vision_parts_sent_when_enabled(fake, tmp_path):
    png = png_file(tmp_path)
    jpg = png_file(tmp_path, "photo.bin", "JPEG")  # the mime type comes from the bytes, not the name
    bot = make_bot(fake.base_url, vision_input=True)
    reply = bot.reply(
        "这是什么", ctx("这是什么", image_paths=[str(png), str(jpg), str(tmp_path / "gone.png")])
    )
    assert reply.content == "答：这是什么（收到 2 张图片）"
    content = fake.requests[-1]["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "这是什么"}
    urls = [p["image_url"]["url"] for p in content[1:]]
    assert urls[0].startswith("data:image/png;base64,")
    assert urls[1].startswith("data:image/jpeg;base64,")
    assert base64.b64decode(urls[0].split(",", 1)[1]) == png.read_bytes()
    # memory keeps a note, not the image bytes
    bot.reply("然后呢", ctx("然后呢"))
    first_user = fake.requests[-1]["messages"][0]["content"]
    assert isinstance(first_user, str) and first_user.startswith("这是什么") and "2 张图片" in first_user


def test_no_vision_parts_when_disabled(fake, tmp_path):
    png = png_file(tmp_path)
    bot = make_bot(fake.base_url, vision_input=False)
    bot.reply("这是什么", ctx("这是什么", image_paths=[str(png)]))
    content = fake.requests[-1]["messages"][-1]["content"]
    assert isinstance(content, str)
    assert content.startswith("这是什么")
    assert "data:image" not in str(fake.requests[-1])


def test_api_key_never_logged(fake, caplog):
    caplog.set_level(logging.DEBUG)
    make_bot(fake.base_url).reply("你好", ctx("你好"))
    assert caplog.text  # something was logged at DEBUG
    assert API_KEY not in caplog.text


def test_many_sessions_concurrently(fake):
    release = threading.Event()
    sessions = 6

    def slow_reply(body):
        release.wait(10)
        return "答：" + body["messages"][-1]["content"]

    fake.reply_fn = slow_reply
    bot = make_bot(fake.base_url)
    results: dict[str, str] = {}

    def ask(n: int) -> None:
        results[f"s{n}"] = bot.reply(f"q{n}", ctx(f"q{n}", f"s{n}")).content

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(sessions)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while fake.current_concurrency < sessions and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for t in threads:
        t.join(timeout=10)
    assert fake.peak_concurrency == sessions
    assert results == {f"s{n}": f"答：q{n}" for n in range(sessions)}
