"""Model provider presets: what each resolves to, CoW's key names, overrides, and that each preset's
request (path under its base URL, model, key) reaches an OpenAI-compatible fake over real HTTP."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from bridge.context import Context, ContextType
from bridge.reply import ReplyType
from models.providers import (
    KNOWN_PROVIDERS,
    NO_KEY_PLACEHOLDER,
    PRESETS,
    apply_endpoint,
    endpoint_problem,
    resolve_endpoint,
    unknown_provider,
)
from sandbox.fake_openai import FakeOpenAIServer


def settings(**values):
    """A ``conf().get`` over just ``values``."""
    return lambda key, default=None: values.get(key, default)


# The documented values (docs/models.md): a change here is a change users must read about.
DOCUMENTED = {
    "openai": ("https://api.openai.com/v1", "gpt-4o-mini", "whisper-1"),
    "deepseek": ("https://api.deepseek.com", "deepseek-v4-flash", ""),
    "qwen": ("https://dashscope.aliyuncs.com/compatible-mode/v1", "qwen-plus", ""),
    "zhipu": ("https://open.bigmodel.cn/api/paas/v4", "glm-4-flash", ""),
    "moonshot": ("https://api.moonshot.cn/v1", "moonshot-v1-8k", ""),
    "siliconflow": (
        "https://api.siliconflow.cn/v1",
        "Qwen/Qwen2.5-7B-Instruct",
        "FunAudioLLM/SenseVoiceSmall",
    ),
    "ollama": ("http://127.0.0.1:11434/v1", "qwen2.5", ""),
    "vllm": ("http://127.0.0.1:8000/v1", "served-model", ""),
    "fastgpt": ("http://kb.example.com/api/v1", "fastgpt", ""),
    "maxkb": ("http://kb.example.com/api/application/app-1", "maxkb", ""),
}
# What the operator must add for presets without a fixed address or model.
OPERATOR_GIVES = {
    "vllm": {"model": "served-model"},
    "fastgpt": {"open_ai_api_base": "http://kb.example.com/api/v1"},
    "maxkb": {"open_ai_api_base": "http://kb.example.com/api/application/app-1/"},
}
COW_KEYS = {
    "deepseek": "deepseek_api_key",
    "qwen": "dashscope_api_key",
    "zhipu": "zhipu_ai_api_key",
    "moonshot": "moonshot_api_key",
}


def test_every_preset_is_documented_here():
    assert set(DOCUMENTED) == set(PRESETS) == set(KNOWN_PROVIDERS)


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_each_preset_fills_base_url_model_and_speech_model(name):
    get = settings(model_provider=name, open_ai_api_key="sk-x", **OPERATOR_GIVES.get(name, {}))
    endpoint = resolve_endpoint(get)
    assert (endpoint.api_base, endpoint.model, endpoint.stt_model) == DOCUMENTED[name]
    assert endpoint.provider == name and endpoint.api_key == "sk-x"
    assert endpoint_problem(get) is None


@pytest.mark.parametrize("name", sorted(COW_KEYS))
def test_cows_key_name_is_read_before_open_ai_api_key(name):
    endpoint = resolve_endpoint(settings(model_provider=name, **{COW_KEYS[name]: "sk-cow"}))
    assert endpoint.api_key == "sk-cow"
    both = settings(model_provider=name, open_ai_api_key="sk-generic", **{COW_KEYS[name]: "sk-cow"})
    assert resolve_endpoint(both).api_key == "sk-cow"
    # Another provider's key is not taken for this one.
    other = "deepseek" if name != "deepseek" else "qwen"
    assert resolve_endpoint(settings(model_provider=other, **{COW_KEYS[name]: "sk-cow"})).api_key == ""


@pytest.mark.parametrize(
    ("bot_type", "preset"), [("deepseek", "deepseek"), ("dashscope", "qwen"), ("glm-4", "zhipu")]
)
def test_cows_bot_type_names_select_the_preset(bot_type, preset):
    endpoint = resolve_endpoint(settings(bot_type=bot_type, open_ai_api_key="k"))
    assert endpoint.provider == preset and endpoint.api_base == DOCUMENTED[preset][0]


def test_open_ai_api_base_and_model_override_the_preset_and_cows_base_names_sit_between():
    base = settings(model_provider="deepseek", open_ai_api_key="k", deepseek_api_base="https://proxy.cn/ds/")
    assert resolve_endpoint(base).api_base == "https://proxy.cn/ds"
    over = settings(
        model_provider="DeepSeek",
        open_ai_api_key="k",
        deepseek_api_base="https://proxy.cn/ds",
        open_ai_api_base="https://gateway.cn/v1",
        model="deepseek-v4-pro",
    )
    endpoint = resolve_endpoint(over)
    assert (endpoint.provider, endpoint.api_base, endpoint.model) == (
        "deepseek",
        "https://gateway.cn/v1",
        "deepseek-v4-pro",
    )


def test_no_provider_is_openai_and_a_custom_base_has_no_speech_model():
    assert resolve_endpoint(settings()).provider == "openai"
    assert resolve_endpoint(settings(open_ai_api_base="https://api.openai.com/v1/")).provider == "openai"
    custom = resolve_endpoint(settings(open_ai_api_base="https://one-api.example.com/v1"))
    assert (custom.provider, custom.model, custom.stt_model) == ("", "gpt-4o-mini", "")


def test_local_servers_need_no_key():
    assert resolve_endpoint(settings(model_provider="ollama")).api_key == NO_KEY_PLACEHOLDER
    assert resolve_endpoint(settings(model_provider="qwen")).api_key == ""


def test_unknown_provider_is_one_line_listing_the_known_ones():
    assert unknown_provider(settings(model_provider="wenxin")) == (
        "unknown model_provider 'wenxin'; known providers: openai, deepseek, qwen, zhipu, moonshot, "
        "siliconflow, ollama, vllm, fastgpt, maxkb"
    )
    assert unknown_provider(settings(model_provider=" Qwen ")) is None


def test_presets_without_a_fixed_address_or_model_say_what_to_set():
    fastgpt = endpoint_problem(settings(model_provider="fastgpt"))
    assert fastgpt is not None and fastgpt.startswith("model_provider 'fastgpt' needs open_ai_api_base")
    maxkb = endpoint_problem(settings(model_provider="maxkb"))
    assert maxkb is not None and "/api/application/" in maxkb
    assert endpoint_problem(settings(model_provider="vllm")) == (
        "model_provider 'vllm' needs model — the model name your server serves"
    )


def test_apply_endpoint_writes_the_resolved_values_once_and_is_idempotent():
    values = {"model_provider": "qwen", "dashscope_api_key": "sk-ds", "open_ai_api_base": "", "model": ""}
    apply_endpoint(values)
    assert values["open_ai_api_base"] == DOCUMENTED["qwen"][0]
    assert (values["model"], values["open_ai_api_key"]) == ("qwen-plus", "sk-ds")
    again = dict(values)
    apply_endpoint(again)
    assert again == values
    openai = {"open_ai_api_key": "sk-o"}
    apply_endpoint(openai)
    assert resolve_endpoint(openai.get).stt_model == "whisper-1"  # still OpenAI after the write
    unknown = {"model_provider": "nope"}
    apply_endpoint(unknown)
    assert unknown == {"model_provider": "nope"}


def _on_fake(api_base: str, fake: FakeOpenAIServer) -> str:
    """The preset's base URL with the fake's scheme and address: the path is the preset's own."""
    return f"http://127.0.0.1:{fake.port}{urlsplit(api_base).path}"


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_each_presets_request_reaches_the_fake_with_its_path_model_and_key(name, monkeypatch):
    from config import conf
    from models.bot_factory import create_bot

    cfg = conf()
    key_setting = COW_KEYS.get(name, "open_ai_api_key")
    for key, value in {"bot_type": "", "model_provider": name, "model": "", "open_ai_api_base": ""}.items():
        monkeypatch.setitem(cfg, key, value)
    for key, value in {**OPERATOR_GIVES.get(name, {}), key_setting: f"sk-{name}"}.items():
        monkeypatch.setitem(cfg, key, value)
    bot = create_bot("")
    expected_base, expected_model, _ = DOCUMENTED[name]
    assert bot.client.api_base == expected_base.rstrip("/")  # type: ignore[attr-defined]
    with FakeOpenAIServer() as fake:
        bot.client.api_base = _on_fake(bot.client.api_base, fake)  # type: ignore[attr-defined]
        reply = bot.reply("你好", Context(ContextType.TEXT, "你好", {"session_id": "c1"}))
        assert (reply.type, reply.content) == (ReplyType.TEXT, "答：你好")
        assert fake.requests[-1]["model"] == expected_model
        (hit,) = fake.hits
    assert hit["path"] == urlsplit(expected_base).path.rstrip("/") + "/chat/completions"
    assert hit["authorization"] == f"Bearer sk-{name}"
