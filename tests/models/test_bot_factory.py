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
    for known in ("echo", "openai", "chatGPT", "dify"):
        assert known in message


def test_auto_and_aliases_read_the_configuration(monkeypatch):
    from config import conf
    from models.openai_chat_bot import OpenAIChatBot

    cfg = conf()
    for key in ("bot_type", "model_provider"):  # whatever an earlier test left in the configuration
        monkeypatch.setitem(cfg, key, "")
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


KNOWN_LINE = (
    "known types: echo, openai, chatGPT, gpt, dify, deepseek, dashscope, qwen, zhipu, glm-4, moonshot "
    "(any letter case)"
)


@pytest.mark.parametrize("sandbox", [False, True])
def test_unknown_bot_type_is_refused_listing_the_known_ones(sandbox):
    problem = check_bot_settings(settings(bot_type="baidu", open_ai_api_key="sk-x"), sandbox=sandbox)
    assert problem == f"unknown bot_type 'baidu'; {KNOWN_LINE}"


def test_sandbox_without_a_key_uses_the_echo_bot_but_an_explicit_openai_is_still_refused():
    assert check_bot_settings(settings(), sandbox=True) is None
    assert check_bot_settings(settings(bot_type="openai"), sandbox=True) is not None


def test_known_types_are_exactly_the_accepted_names():
    assert {name.lower() for name in KNOWN_BOT_TYPES} == set(_ALIASES)
    kinds = [bot_kind(name) for name in KNOWN_BOT_TYPES]
    assert kinds == ["echo", "openai", "openai", "openai", "dify"] + ["openai"] * 6
    assert bot_kind("Dify") == "dify" and bot_kind("baidu") is None and bot_kind("") is None


def test_the_named_env_var_is_the_one_config_reads():
    from config import all_settings

    spec = next(s for s in all_settings() if s.name == "open_ai_api_key")
    assert OPEN_AI_API_KEY_ENV == spec.env == "OPEN_AI_API_KEY"


@pytest.mark.parametrize("sandbox", [False, True])
def test_unknown_model_provider_is_refused_in_one_line_even_in_the_sandbox(sandbox):
    problem = check_bot_settings(settings(model_provider="wenxin", open_ai_api_key="k"), sandbox=sandbox)
    assert problem is not None and problem.startswith("unknown model_provider 'wenxin'; known providers: ")
    assert "\n" not in problem and "deepseek" in problem and "maxkb" in problem


def test_a_preset_takes_cows_key_and_without_any_key_says_which_to_set():
    assert check_bot_settings(settings(model_provider="qwen", dashscope_api_key="sk-ds")) is None
    assert check_bot_settings(settings(model_provider="qwen")) == (
        "no API key for model_provider 'qwen' — set dashscope_api_key or open_ai_api_key (or OPEN_AI_API_KEY)"
    )
    # CoW's bot_type for the provider means the same preset.
    assert check_bot_settings(settings(bot_type="moonshot", moonshot_api_key="sk-m")) is None
    assert "moonshot_api_key" in (check_bot_settings(settings(bot_type="moonshot")) or "")


def test_local_presets_need_no_key_but_what_they_cannot_guess():
    assert check_bot_settings(settings(model_provider="ollama")) is None
    assert check_bot_settings(settings(model_provider="vllm")) == (
        "model_provider 'vllm' needs model — the model name your server serves"
    )
    problem = check_bot_settings(settings(model_provider="fastgpt", open_ai_api_key="fastgpt-x"))
    assert problem is not None and "needs open_ai_api_base" in problem


def test_sandbox_with_a_preset_but_no_key_starts_the_echo_bot_and_says_so_in_one_line():
    from models.bot_factory import effective_bot_type, sandbox_note

    for name in ("deepseek", "qwen", "fastgpt", "siliconflow"):
        get = settings(model_provider=name)
        assert check_bot_settings(get, sandbox=True) is None
        assert effective_bot_type(get) == "echo"
        note = sandbox_note(get)
        assert note is not None and name in note and "\n" not in note
    assert sandbox_note(settings()) is None  # no provider chosen: the echo bot is the plain sandbox
    assert sandbox_note(settings(model_provider="qwen", dashscope_api_key="k")) is None


def test_dify_needs_its_key_and_a_chat_app_type():
    ok = settings(bot_type="dify", dify_api_key="app-x")
    assert check_bot_settings(ok) is None and check_bot_settings(ok, sandbox=True) is None
    assert check_bot_settings(settings(bot_type="Dify", dify_api_key="app-x", dify_app_type="Agent")) is None
    assert check_bot_settings(settings(bot_type="dify")) == (
        "dify_api_key is empty but bot_type is 'dify' — set it (or DIFY_API_KEY)"
    )
    problem = check_bot_settings(settings(bot_type="dify", dify_api_key="app-x", dify_app_type="workflow"))
    assert problem is not None and problem.startswith("dify_app_type 'workflow' is not supported")


def test_the_named_dify_env_var_is_the_one_config_reads():
    from config import all_settings
    from models.bot_factory import DIFY_API_KEY_ENV

    spec = next(s for s in all_settings() if s.name == "dify_api_key")
    assert spec.env == DIFY_API_KEY_ENV and spec.secret


def test_a_cow_provider_bot_type_asked_for_by_name_uses_its_preset(monkeypatch):
    from config import conf
    from models.openai_chat_bot import OpenAIChatBot

    cfg = conf()
    monkeypatch.setitem(cfg, "bot_type", "openai")
    monkeypatch.setitem(cfg, "zhipu_ai_api_key", "sk-z")
    bot = create_bot("zhipu")  # as Bridge().find_chat_bot("zhipu") asks
    assert isinstance(bot, OpenAIChatBot)
    assert (bot.client.api_base, bot.model) == ("https://open.bigmodel.cn/api/paas/v4", "glm-4-flash")
