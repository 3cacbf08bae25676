"""Presets for OpenAI-compatible model providers: a short ``model_provider`` name fills the base URL,
a default model and, where the provider has one, a speech-to-text model.

``open_ai_api_base`` and ``model`` stay the operator's override. CoW's own key names for a provider
(``deepseek_api_key``, ``dashscope_api_key``...) are read before ``open_ai_api_key``, so a CoW
config.json keeps working. docs/models.md lists the presets and where each value was checked.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from models.openai_http import DEFAULT_API_BASE

Getter = Callable[..., Any]

DEFAULT_MODEL = "gpt-4o-mini"
# Sent as the bearer token to local servers that need none (Ollama ignores it; vLLM checks it only
# when started with --api-key).
NO_KEY_PLACEHOLDER = "none"


@dataclass(frozen=True)
class Preset:
    """One provider. An empty ``api_base`` or ``model`` means the operator must set it."""

    name: str
    api_base: str
    model: str
    key_settings: tuple[str, ...] = ()  # CoW's key names for this provider, tried first
    base_settings: tuple[str, ...] = ()  # CoW's base URL names, below open_ai_api_base
    key_required: bool = True
    stt_model: str = ""  # an OpenAI-compatible /audio/transcriptions model, "" = none
    base_example: str = ""  # shown when the operator must give the base URL


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("openai", DEFAULT_API_BASE, DEFAULT_MODEL, stt_model="whisper-1"),
        Preset(
            "deepseek",
            "https://api.deepseek.com",
            "deepseek-v4-flash",
            key_settings=("deepseek_api_key",),
            base_settings=("deepseek_api_base",),
        ),
        Preset(
            "qwen",
            "https://dashscope.aliyuncs.com/compatible-mode/v1",
            "qwen-plus",
            key_settings=("dashscope_api_key",),
        ),
        Preset(
            "zhipu",
            "https://open.bigmodel.cn/api/paas/v4",
            "glm-4-flash",
            key_settings=("zhipu_ai_api_key",),
            base_settings=("zhipu_ai_api_base",),
        ),
        Preset(
            "moonshot",
            "https://api.moonshot.cn/v1",
            "moonshot-v1-8k",
            key_settings=("moonshot_api_key",),
            base_settings=("moonshot_base_url",),
        ),
        Preset(
            "siliconflow",
            "https://api.siliconflow.cn/v1",
            "Qwen/Qwen2.5-7B-Instruct",
            stt_model="FunAudioLLM/SenseVoiceSmall",
        ),
        Preset("ollama", "http://127.0.0.1:11434/v1", "qwen2.5", key_required=False),
        Preset("vllm", "http://127.0.0.1:8000/v1", "", key_required=False),
        Preset("fastgpt", "", "fastgpt", base_example="http://<FastGPT>/api/v1"),
        Preset("maxkb", "", "maxkb", base_example="http://<MaxKB>/api/application/<应用 ID / app id>"),
    )
}
KNOWN_PROVIDERS = tuple(PRESETS)

# CoW's bot_type names for these providers (its dedicated bots): here they mean the preset.
COW_BOT_TYPES = {
    "deepseek": "deepseek",
    "dashscope": "qwen",
    "qwen": "qwen",
    "zhipu": "zhipu",
    "glm-4": "zhipu",
    "moonshot": "moonshot",
}


@dataclass(frozen=True)
class Endpoint:
    """Where the OpenAI-compatible bot and speech provider connect, after presets and overrides."""

    provider: str  # a preset name, or "" for a custom base URL without a preset
    api_key: str  # "" when none is configured (NO_KEY_PLACEHOLDER for presets that need none)
    api_base: str
    model: str
    stt_model: str  # the preset's (or voice_to_text_model); "" = the provider has none

    @property
    def preset(self) -> Preset | None:
        return PRESETS.get(self.provider)


def _text(get: Getter, key: str) -> str:
    return str(get(key, "") or "").strip()


def provider_name(get: Getter) -> str:
    """The ``model_provider`` asked for (lower case), else the one a CoW bot_type names, else ""."""
    name = _text(get, "model_provider").lower()
    if name:
        return name
    return COW_BOT_TYPES.get(_text(get, "bot_type").lower(), "")


def unknown_provider(get: Getter) -> str | None:
    """The one-line problem when ``model_provider`` names no preset, else None."""
    name = provider_name(get)
    if not name or name in PRESETS:
        return None
    return f"unknown model_provider {name!r}; known providers: {', '.join(KNOWN_PROVIDERS)}"


def key_names(get: Getter) -> list[str]:
    """The settings an API key is read from, in order (for messages)."""
    preset = PRESETS.get(provider_name(get))
    return [*(preset.key_settings if preset else ()), "open_ai_api_key"]


def resolve_endpoint(get: Getter) -> Endpoint:
    """Presets filled in, overrides applied. Pure: reads nothing but ``get`` (``conf().get``).

    No ``model_provider`` and no ``open_ai_api_base`` (or OpenAI's own) means OpenAI itself; a base URL
    without a preset is a custom endpoint with no speech-to-text model unless one is configured.
    """
    name = provider_name(get)
    base_override = _text(get, "open_ai_api_base").rstrip("/")
    if not name and base_override in ("", DEFAULT_API_BASE):
        name = "openai"  # CoW's template spells OpenAI's own URL out
    preset = PRESETS.get(name)
    key = next((v for k in key_names(get) if (v := _text(get, k))), "")
    if not key and preset is not None and not preset.key_required:
        key = NO_KEY_PLACEHOLDER
    bases = [base_override, *(_text(get, k) for k in (preset.base_settings if preset else ()))]
    base = next((b for b in bases if b), preset.api_base if preset else "") or DEFAULT_API_BASE
    model = _text(get, "model") or (preset.model if preset else "") or DEFAULT_MODEL
    stt = _text(get, "voice_to_text_model") or (preset.stt_model if preset else "")
    return Endpoint(name if preset else "", key, base.rstrip("/"), model, stt)


def endpoint_problem(get: Getter) -> str | None:
    """What the chosen preset still needs from the operator (a base URL, a model), or None."""
    name = provider_name(get)
    preset = PRESETS.get(name)
    if preset is None:
        return None
    if not preset.api_base and not _text(get, "open_ai_api_base"):
        return (
            f"model_provider {name!r} needs open_ai_api_base — the app's OpenAI-compatible address, "
            f"e.g. {preset.base_example}"
        )
    if not preset.model and not _text(get, "model"):
        return f"model_provider {name!r} needs model — the model name your server serves"
    return None


def apply_endpoint(values: MutableMapping[str, Any]) -> None:
    """Write the resolved base URL, model and key into the configuration, once at start.

    Everything that reads the standard keys (the ``--doctor`` checks, plugins such as godcmd, the
    effective-config log line) then sees what the bot will use. Idempotent; does nothing for an
    unknown ``model_provider`` (start-up refuses it).
    """
    if unknown_provider(values.get) is not None:
        return
    endpoint = resolve_endpoint(values.get)
    values["open_ai_api_base"] = endpoint.api_base
    values["model"] = endpoint.model
    if endpoint.api_key and endpoint.api_key != NO_KEY_PLACEHOLDER:
        values["open_ai_api_key"] = endpoint.api_key
