"""CoW-compatible configuration: ``conf()``, ``load_config()``, plugin config helpers.

Every setting is declared once, in ``_RUNTIME_SETTINGS`` below or in the channel's own
``KF_SETTINGS`` (merged here), with its default, type, environment variable and a one-line
description. Precedence: default < config.json < environment variable < ``overrides``.
Environment variables are parsed by type, never evaluated. Reading configuration creates no files.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from channel.wechatcom_kf.settings import (
    KF_SETTINGS,
    SettingSpec,
    coerce_setting_value,
    parse_setting_value,
)

logger = logging.getLogger(__name__)

# One declared setting; the same shape as the channel's own table so both merge into one list.
Setting = SettingSpec

DEFAULT_CHARACTER_DESC = (
    "你是企业的微信客服助手，回答简洁、礼貌、准确；不确定时如实说明并建议联系人工客服。"
    "You are the company's customer-service assistant: answer briefly, politely and accurately."
)


def _s(name: str, default: Any, kind: type, description: str, *, secret: bool = False) -> Setting:
    # CoW maps an environment variable to every key by upper-casing its name; so do we.
    return SettingSpec(name, default, kind, name.upper(), description, secret=secret)


_RUNTIME_SETTINGS: tuple[Setting, ...] = (
    _s(
        "channel_type",
        "wechatcom_kf",
        str,
        "要启动的通道，可用逗号分隔多个 / channel(s) to start, comma-separated",
    ),
    _s("debug", False, bool, "输出 DEBUG 日志（含消息内容）/ log at DEBUG level (includes message contents)"),
    _s(
        "log_file",
        "",
        str,
        "另把日志写入此文件（按大小轮转，权限 0600；空 = 只写 stderr），类似 CoW 的 run.log / also write the "
        "log to this file (rotated by size, mode 0600; empty = stderr only), like CoW's run.log",
    ),
    _s("log_file_max_mb", 20, int, "日志文件达到此大小（MB）时轮转 / rotate the log file at this size (MB)"),
    _s("log_file_backups", 5, int, "保留的旧日志文件个数 / how many rotated log files to keep"),
    _s(
        "bot_type",
        "",
        str,
        "对话模型类型：空 = openai（须有模型 API Key，否则拒绝启动；--sandbox 下用 echo）；dify = Dify 应用；"
        "echo = 离线回声机器人（刻意使用时）；CoW 的 deepseek、dashscope、qwen、zhipu、moonshot 等同于对应的 "
        "model_provider / bot type: empty = openai (needs a model API key, else the app refuses to start; "
        "echo under --sandbox); dify = a Dify app; echo = the offline echo bot, on purpose only; CoW's "
        "deepseek, dashscope, qwen, zhipu, moonshot mean that model_provider",
    ),
    _s(
        "model_provider",
        "",
        str,
        "模型服务预设，填好接口地址和默认模型（见 docs/models.md）：openai、deepseek、qwen、zhipu、moonshot、"
        "siliconflow、ollama、vllm、fastgpt、maxkb；空 = OpenAI 或 open_ai_api_base / provider preset that "
        "fills the base URL and default model (see docs/models.md); empty = OpenAI or open_ai_api_base",
    ),
    _s(
        "model",
        "",
        str,
        "对话模型名称，空 = 预设的默认模型（无预设时 gpt-4o-mini）/ chat model name, empty = the "
        "preset's default (gpt-4o-mini without a preset)",
    ),
    _s(
        "open_ai_api_key",
        "",
        str,
        "OpenAI 兼容接口的 API Key（预设服务也可用下方 CoW 的专用 Key）/ API key of the OpenAI-compatible "
        "API (for a preset, CoW's own key name below works too)",
        secret=True,
    ),
    _s(
        "open_ai_api_base",
        "",
        str,
        "OpenAI 兼容接口地址，设置后覆盖预设；空 = 预设的地址（无预设时 https://api.openai.com/v1）/ base "
        "URL of the OpenAI-compatible API, overrides the preset; empty = the preset's (OpenAI's without one)",
    ),
    _s(
        "stream",
        False,
        bool,
        "以流式（SSE）接收模型回答（openai 与 dify 机器人），回复内容不变 / receive answers as a stream "
        "(SSE) from the openai and dify bots; the reply is the same",
    ),
    _s(
        "deepseek_api_key",
        "",
        str,
        "CoW 的 DeepSeek Key（model_provider: deepseek）/ CoW's DeepSeek key",
        secret=True,
    ),
    _s(
        "deepseek_api_base",
        "",
        str,
        "CoW 的 DeepSeek 接口地址，空 = 预设 / CoW's DeepSeek base URL, empty = preset",
    ),
    _s(
        "dashscope_api_key",
        "",
        str,
        "CoW 的阿里云百炼（DashScope）Key（model_provider: qwen）/ CoW's DashScope key",
        secret=True,
    ),
    _s("zhipu_ai_api_key", "", str, "CoW 的智谱 Key（model_provider: zhipu）/ CoW's Zhipu key", secret=True),
    _s("zhipu_ai_api_base", "", str, "CoW 的智谱接口地址，空 = 预设 / CoW's Zhipu base URL, empty = preset"),
    _s(
        "moonshot_api_key",
        "",
        str,
        "CoW 的 Moonshot/Kimi Key（model_provider: moonshot）/ CoW's Moonshot key",
        secret=True,
    ),
    _s(
        "moonshot_base_url",
        "",
        str,
        "CoW 的 Moonshot 接口地址，空 = 预设 / CoW's Moonshot base URL, empty = preset",
    ),
    _s(
        "dify_api_base",
        "https://api.dify.ai/v1",
        str,
        "Dify 应用 API 地址（自部署：http://<host>/v1）/ Dify app API base URL",
    ),
    _s("dify_api_key", "", str, "Dify 应用的 API Key（app-…）/ API key of the Dify app (app-…)", secret=True),
    _s(
        "dify_app_type",
        "chatbot",
        str,
        "Dify 应用类型：chatbot、agent（总是流式）、chatflow / Dify app type: chatbot, agent (always "
        "streamed), chatflow",
    ),
    _s("proxy", "", str, "访问模型接口的 HTTP 代理，空=不用 / HTTP proxy for model API calls, empty = none"),
    _s("request_timeout", 60.0, float, "调用模型接口的超时秒数 / timeout in seconds of one model API call"),
    _s("character_desc", DEFAULT_CHARACTER_DESC, str, "系统提示词（人设）/ system prompt of the assistant"),
    _s("temperature", 0.7, float, "模型采样温度 / sampling temperature"),
    _s("max_history_turns", 10, int, "每个会话记住的最近轮数 / conversation turns remembered per session"),
    _s(
        "conversation_max_tokens",
        4000,
        int,
        "每个会话记住的历史上限（字符）/ upper bound of remembered history per session (characters)",
    ),
    _s(
        "expires_in_seconds",
        3600,
        int,
        "会话空闲多久后遗忘（秒）/ seconds of idleness before a session is forgotten",
    ),
    _s("vision_input", False, bool, "把会话中的图片发给模型 / send the session's images to the model"),
    _s(
        "voice_to_text",
        "",
        str,
        "语音识别：空 = 模型服务自带的（openai、siliconflow 预设，有 Key 时），openai = OpenAI 兼容接口，"
        "off = 关闭 / speech-to-text: empty = the model provider's own (openai, siliconflow presets; "
        "with a key), openai = the OpenAI-compatible API, off = none",
    ),
    _s(
        "text_to_voice",
        "",
        str,
        "语音合成服务：空=关闭，openai / text-to-speech provider: empty = off, openai",
    ),
    _s(
        "voice_to_text_model",
        "",
        str,
        "语音识别模型，空 = 预设的（无预设时 whisper-1）/ speech-to-text model, empty = the preset's "
        "(whisper-1 without one)",
    ),
    _s("text_to_voice_model", "tts-1", str, "语音合成模型 / text-to-speech model"),
    _s("tts_voice_id", "alloy", str, "语音合成音色 / text-to-speech voice"),
    _s("voice_reply_voice", False, bool, "语音消息用语音回复 / answer voice messages with voice"),
    _s("always_reply_voice", False, bool, "所有消息都用语音回复 / answer every message with voice"),
    _s(
        "single_chat_prefix",
        [""],
        list,
        '私聊触发前缀，[""]=全部回复 / private-chat trigger prefixes, [""] = answer everything',
    ),
    _s("single_chat_reply_prefix", "", str, "文字回复前缀 / text put before every text reply"),
    _s("single_chat_reply_suffix", "", str, "文字回复后缀 / text put after every text reply"),
    _s("image_create_prefix", [], list, "画图触发前缀，[]=关闭 / image-creation trigger prefixes, [] = off"),
    _s(
        "clear_memory_commands",
        ["#清除记忆"],
        list,
        "清空会话记忆的命令 / commands that clear the session memory",
    ),
    _s("concurrency_in_session", 1, int, "同一会话同时处理的消息数 / contexts handled at once per session"),
    _s("max_concurrent_sessions", 64, int, "同时处理的会话数（线程数）/ sessions handled at once (threads)"),
    _s(
        "max_pending_contexts",
        1000,
        int,
        "排队消息总上限，满时入队阻塞（积压时限制内存）/ pending contexts in all queues; producing blocks "
        "when full (bounds memory under a backlog)",
    ),
    _s(
        "send_retry_attempts",
        2,
        int,
        "发送遇到网络类临时错误时的重试次数 / retries of a send that failed with a transient error",
    ),
    _s(
        "send_retry_delay_seconds",
        1.0,
        float,
        "首次重试前的等待秒数（之后翻倍）/ delay before the first retry (doubled after)",
    ),
    _s(
        "shutdown_timeout_seconds",
        10.0,
        float,
        "退出时等待处理中消息完成的秒数 / seconds to let in-flight messages finish on shutdown",
    ),
    _s("plugin_trigger_prefix", "$", str, "插件命令前缀 / prefix of plugin commands"),
    _s("subscribe_msg", "", str, "关注/进入时的欢迎语（插件使用）/ welcome text used by plugins"),
    _s(
        "appdata_dir",
        "",
        str,
        "数据目录，相对路径按项目根目录解析 / data directory, relative to the project root",
    ),
)

_ALL: tuple[Setting, ...] = _RUNTIME_SETTINGS + tuple(KF_SETTINGS)
_BY_NAME: dict[str, Setting] = {}
for _spec in _ALL:
    if _spec.name in _BY_NAME:  # a programming error: each key is declared once
        raise RuntimeError(f"setting {_spec.name} declared twice")
    _BY_NAME[_spec.name] = _spec
_ALIASES: dict[str, str] = {alias: spec.name for spec in _ALL for alias in spec.aliases}

# str settings that also accept a JSON list in config.json (stored comma-separated).
_LIST_AS_CSV = frozenset({"channel_type"})
_SECRET_WORDS = ("secret", "key", "token", "password", "passwd")


class Config(dict):
    """The effective configuration (a plain dict, as CoW plugins expect) plus CoW's user-data API."""

    # load_config applied every declared setting's environment variable (below ``overrides``): the
    # channel must not read the environment a second time (it does in hosts without this flag).
    applies_environment = True

    def __init__(self, data: Mapping[str, Any] | None = None, explicit: Iterable[str] = ()) -> None:
        super().__init__(data or {})
        self.user_datas: dict[str, dict[str, Any]] = {}
        # Keys set by config.json, the environment or overrides (the rest are declared defaults): a
        # channel loaded under another name may default differently (upstream's wechat_kf: port 9888).
        self.explicit_keys: frozenset[str] = frozenset(explicit)

    def get_user_data(self, user: str) -> dict[str, Any]:
        return self.user_datas.setdefault(user, {})

    def load_user_datas(self) -> None:
        """CoW keeps per-user data in memory; this runtime does not persist it (no files at start)."""

    def save_user_datas(self) -> None:
        """Kept for plugins that call it; user data lives in memory only."""


def all_settings() -> list[Setting]:
    """Every declared setting, runtime first, then the channel's (for docs and checks)."""
    return list(_ALL)


def defaults() -> dict[str, Any]:
    return {spec.name: _copy(spec.default) for spec in _ALL}


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value


config: Config = Config(defaults())


def conf() -> Config:
    return config


def get_root() -> str:
    return os.path.dirname(os.path.abspath(__file__))


def _coerce(name: str, value: Any) -> Any:
    spec = _BY_NAME[name]
    if name in _LIST_AS_CSV and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    if spec.kind is list and isinstance(value, str):
        # A lone string for a list key is almost always meant as a one-element list.
        return parse_setting_value(value, list) if value.strip().startswith("[") else [value]
    try:
        return coerce_setting_value(value, spec.kind)
    except ValueError as exc:
        raise ValueError(f"config key {name}: {exc}") from None


def _read_file(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8-sig") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def _apply_file(values: dict[str, Any], data: Mapping[str, Any], source: str, setby: set[str]) -> None:
    explicit = set(data)
    for key, value in data.items():
        name = _ALIASES.get(key, key)
        if name != key and name in explicit:
            continue  # the primary spelling wins over the migration alias
        if name not in _BY_NAME:
            logger.warning("unknown config key %r in %s (kept, but nothing here reads it)", key, source)
            values[key] = value
            continue
        if value is None:
            continue
        values[name] = _coerce(name, value)
        setby.add(name)


def _apply_environ(values: dict[str, Any], environ: Mapping[str, str], setby: set[str]) -> None:
    for spec in _ALL:
        names = ([spec.env] if spec.env else []) + [alias.upper() for alias in spec.aliases]
        for env_name in names:
            if env_name in environ:
                try:
                    values[spec.name] = parse_setting_value(environ[env_name], spec.kind)
                    setby.add(spec.name)
                except ValueError as exc:
                    raise ValueError(f"environment variable {env_name}: {exc}") from None
                break


def load_config(
    config_path: str | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the configuration, replace the global one and return it.

    ``config_path`` None means ``config.json`` next to this file when it exists (else defaults only).
    Raises ValueError naming the key, variable or file on a malformed value; FileNotFoundError for an
    explicitly named file that does not exist.
    """
    global config
    values = defaults()
    setby: set[str] = set()
    path = config_path or os.path.join(get_root(), "config.json")
    if config_path is not None or os.path.exists(path):
        _apply_file(values, _read_file(path), os.path.basename(path), setby)
    else:
        logger.info("no config.json found; using defaults and environment variables")
    _apply_environ(values, os.environ if environ is None else environ, setby)
    if overrides:
        _apply_file(values, overrides, "overrides", setby)
    config = Config(values, setby)
    return config


def is_secret_key(name: str) -> bool:
    """True for declared secrets and for any key whose name mentions a secret, key, token or password."""
    spec = _BY_NAME.get(name)
    if spec is not None and spec.secret:
        return True
    # "conversation_max_tokens" is a size, not a token: match whole name parts only.
    return any(part.endswith(_SECRET_WORDS) for part in name.lower().replace("-", "_").split("_"))


def masked(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy safe to log: every secret value replaced (nested dicts too)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if is_secret_key(str(key)):
            out[key] = "***" if value else ""
        elif isinstance(value, Mapping):
            out[key] = masked(value)
        else:
            out[key] = value
    return out


def log_config(values: Mapping[str, Any] | None = None) -> None:
    """Log the effective configuration, secrets masked: only what differs from the declared defaults
    (the rest is in docs/configuration.md), so the line says what this deployment chose."""
    current = conf() if values is None else values
    declared = defaults()
    chosen = {k: v for k, v in current.items() if k not in declared or v != declared[k]}
    logger.info(
        "effective config (%d more setting(s) at their defaults): %s",
        sum(1 for k in current if k in declared) - sum(1 for k in chosen if k in declared),
        json.dumps(masked(chosen), ensure_ascii=False, sort_keys=True, default=str),
    )


def logged_config(line: str) -> dict[str, Any]:
    """The values a ``log_config`` line shows (for tests and scripts reading a log)."""
    shown: dict[str, Any] = json.loads(line.split("): ", 1)[1])
    return shown


def get_appdata_dir() -> str:
    """The data directory (created on first call, never at import or load)."""
    data_path = os.path.join(get_root(), conf().get("appdata_dir", "") or "")
    if not os.path.exists(data_path):
        logger.info("creating data directory %s", data_path)
        os.makedirs(data_path, exist_ok=True)
    return data_path


def subscribe_msg() -> str:
    trigger_prefix = (conf().get("single_chat_prefix") or [""])[0]
    return str(conf().get("subscribe_msg", "")).format(trigger_prefix=trigger_prefix)


# Global plugin configuration (plugins/config.json), keyed by lower-case plugin name, as in CoW.
plugin_config: dict[str, Any] = {}


def write_plugin_config(pconf_all: Mapping[str, Any]) -> None:
    for name, value in pconf_all.items():
        plugin_config[name.lower()] = value


def remove_plugin_config(name: str) -> None:
    plugin_config.pop(name.lower(), None)


def pconf(plugin_name: str) -> Any:
    return plugin_config.get(plugin_name.lower())


# CoW's process-wide state for plugins (e.g. godcmd's admin list).
global_config: dict[str, Any] = {"admin_users": []}
