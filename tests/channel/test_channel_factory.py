import pytest

from channel import channel_factory
from channel.channel import Channel
from channel.channel_factory import UnknownChannelError, create_channel, register_channel


class Dummy(Channel):
    def startup(self):
        pass


@pytest.fixture
def dummy_registered():
    register_channel("dummy_test", lambda: Dummy)
    yield
    channel_factory.unregister_channel("dummy_test")


def test_unknown_type_is_a_value_error_listing_known_types():
    with pytest.raises(UnknownChannelError) as info:
        create_channel("wechat_mp_nope")
    message = str(info.value)
    assert "wechat_mp_nope" in message
    for known in ("wechatcom_kf", "wechat_kf", "terminal"):
        assert known in message
    assert isinstance(info.value, ValueError)


def test_registered_channel_is_built_and_typed(dummy_registered):
    channel = create_channel("dummy_test")
    assert isinstance(channel, Dummy)
    assert channel.channel_type == "dummy_test"
    assert "dummy_test" in channel_factory.known_channel_types()


def test_double_registration_is_refused_unless_replacing(dummy_registered):
    with pytest.raises(ValueError, match="already registered"):
        register_channel("dummy_test", lambda: Dummy)
    register_channel("dummy_test", lambda: Dummy, replace=True)


def test_kf_channel_and_alias_are_registered_lazily():
    known = channel_factory.known_channel_types()
    assert {"wechatcom_kf", "wechat_kf"} <= set(known)
    ours, alias = channel_factory._LOADERS["wechatcom_kf"](), channel_factory._LOADERS["wechat_kf"]()
    assert issubclass(alias, ours) and alias.__name__ == "WechatKfChannel"  # upstream's name, our code


def test_dotted_path_loads_a_deployer_channel():
    channel = create_channel("channel.terminal_channel:TerminalChannel")
    assert type(channel).__name__ == "TerminalChannel"
    with pytest.raises(UnknownChannelError, match="cannot import"):
        create_channel("no.such.module:Thing")


def test_terminal_channel_answers_lines(tmp_path):
    import io

    import config
    from bridge.bridge import Bridge
    from bridge.reply import Reply, ReplyType

    class Bot:
        def reply(self, query, context):
            return Reply(ReplyType.TEXT, query.upper())

    saved = config.config
    Bridge._drop_instance()
    try:
        Bridge().set_bot(Bot())
        out = io.StringIO()
        from channel.terminal_channel import TerminalChannel

        channel = TerminalChannel(stdin=io.StringIO("hello\n\nworld\n"), stdout=out)
        channel.startup()
        channel.stop()
        assert out.getvalue().splitlines() == ["Bot: HELLO", "Bot: WORLD"]
    finally:
        Bridge._drop_instance()
        config.config = saved
