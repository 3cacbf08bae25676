from bridge.context import Context, ContextType
from bridge.reply import ReplyType
from models.echo_bot import EchoBot


def test_echo_repeats_query():
    reply = EchoBot().reply("你好", Context(ContextType.TEXT, "你好"))
    assert reply.type == ReplyType.TEXT
    assert reply.content == "你说：你好"


def test_echo_mentions_images():
    ctx = Context(ContextType.TEXT, "看图", {"image_paths": ["/a.png", "/b.jpg"]})
    assert EchoBot().reply("看图", ctx).content == "你说：看图（收到 2 张图片）"


def test_echo_handles_empty_query_without_context():
    reply = EchoBot().reply("", None)
    assert reply.type == ReplyType.TEXT
    assert reply.content  # a friendly prompt, not an empty message
    assert "你说：" not in reply.content
