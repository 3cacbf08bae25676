import pytest

from models.bot_factory import create_bot
from models.echo_bot import EchoBot


def test_echo_type_needs_no_config():
    assert isinstance(create_bot("echo"), EchoBot)
    assert isinstance(create_bot("Echo"), EchoBot)


def test_unknown_type_names_the_known_ones():
    with pytest.raises(ValueError) as info:
        create_bot("llama-in-a-box")
    message = str(info.value)
    assert "llama-in-a-box" in message
    for known in ("echo", "openai", "chatGPT"):
        assert known in message


def test_auto_and_aliases_read_the_configuration(monkeypatch):
    from config import conf
    from models.openai_chat_bot import OpenAIChatBot

    cfg = conf()
    monkeypatch.setitem(cfg, "open_ai_api_key", "")
    assert isinstance(create_bot(""), EchoBot)
    monkeypatch.setitem(cfg, "open_ai_api_key", "sk-x")
    monkeypatch.setitem(cfg, "open_ai_api_base", "http://127.0.0.1:9/v1")
    monkeypatch.setitem(cfg, "max_history_turns", 3)
    for name in ("", "openai", "openAI", "chatGPT"):
        bot = create_bot(name)
        assert isinstance(bot, OpenAIChatBot)
        assert bot.client.api_base == "http://127.0.0.1:9/v1"
        assert bot.memory.max_turns == 3
