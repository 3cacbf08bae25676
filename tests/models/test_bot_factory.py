import pytest

from models.bot_factory import (
    _ALIASES,
    KNOWN_BOT_TYPES,
    OPEN_AI_API_KEY_ENV,
    bot_kind,
    check_bot_settings,
    create_bot,
)
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
    for name in ("", "openai", "openAI", "chatGPT", "gpt"):
        bot = create_bot(name)
        assert isinstance(bot, OpenAIChatBot)
        assert bot.client.api_base == "http://127.0.0.1:9/v1"
        assert bot.memory.max_turns == 3


def settings(**values):
    """A ``conf().get`` over just ``values``."""
    return lambda key, default=None: values.get(key, default)


MISSING_KEY = (
    "open_ai_api_key is empty — set it (or OPEN_AI_API_KEY), "
    'or set "bot_type": "echo" to run the offline echo bot on purpose'
)


@pytest.mark.parametrize("bot_type", ["", "  ", None])
@pytest.mark.parametrize("key", ["", "   ", None])
def test_no_bot_type_and_no_key_is_refused_naming_the_setting_and_its_env_var(bot_type, key):
    assert check_bot_settings(settings(bot_type=bot_type, open_ai_api_key=key)) == MISSING_KEY
    assert check_bot_settings(settings()) == MISSING_KEY  # neither set at all


def test_no_bot_type_with_a_key_means_openai_and_is_fine():
    assert check_bot_settings(settings(bot_type="", open_ai_api_key="sk-x")) is None


@pytest.mark.parametrize("bot_type", ["openai", "openAI", "chatGPT", "gpt", " OpenAI "])
def test_explicit_openai_without_a_key_is_refused(bot_type):
    problem = check_bot_settings(settings(bot_type=bot_type, open_ai_api_key=""))
    assert problem == (
        f"open_ai_api_key is empty but bot_type is {bot_type.strip()!r} — set it (or OPEN_AI_API_KEY)"
    )
    assert check_bot_settings(settings(bot_type=bot_type, open_ai_api_key="sk-x")) is None


@pytest.mark.parametrize("bot_type", ["echo", "Echo"])
def test_explicit_echo_is_accepted_with_or_without_a_key(bot_type):
    assert check_bot_settings(settings(bot_type=bot_type)) is None
    assert check_bot_settings(settings(bot_type=bot_type, open_ai_api_key="sk-x")) is None


@pytest.mark.parametrize("sandbox", [False, True])
def test_unknown_bot_type_is_refused_listing_the_known_ones(sandbox):
    problem = check_bot_settings(settings(bot_type="dify", open_ai_api_key="sk-x"), sandbox=sandbox)
    assert problem == "unknown bot_type 'dify'; known types: echo, openai, chatGPT, gpt (any letter case)"


def test_sandbox_without_a_key_uses_the_echo_bot_but_an_explicit_openai_is_still_refused():
    assert check_bot_settings(settings(), sandbox=True) is None
    assert check_bot_settings(settings(bot_type="openai"), sandbox=True) is not None


def test_known_types_are_exactly_the_accepted_names():
    assert {name.lower() for name in KNOWN_BOT_TYPES} == set(_ALIASES)
    assert [bot_kind(name) for name in KNOWN_BOT_TYPES] == ["echo", "openai", "openai", "openai"]
    assert bot_kind("dify") is None and bot_kind("") is None


def test_the_named_env_var_is_the_one_config_reads():
    from config import all_settings

    spec = next(s for s in all_settings() if s.name == "open_ai_api_key")
    assert OPEN_AI_API_KEY_ENV == spec.env == "OPEN_AI_API_KEY"
