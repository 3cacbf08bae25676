"""The channel's settings: declared once, read once at start.

The environment is read in one place per host. This project's ``config.py`` declares these settings
and applies their environment variables itself (its ``Config`` says so with ``applies_environment``);
the channel then reads ``conf()`` only. An upstream CoW host knows none of these keys and maps no
environment variables for them, so there the channel reads its own. Either way the precedence is
environment variable > config.json key > default. The spellings of upstream's later ``wechat_kf``
channel are accepted as aliases; the ``wechatcom_kf`` names are primary.
"""

from __future__ import annotations

import os
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from . import setting_spec
from .desk.config import DeskConfig
from .desk.settings import DESK_SETTING_NAMES, DESK_SETTINGS
from .host import safe_get
from .setting_spec import SettingSpec

WECOM_API_BASE = "https://qyapi.weixin.qq.com/cgi-bin/"
AES_KEY_LENGTH = 43
_AES_KEY_ALPHABET = frozenset(string.ascii_letters + string.digits + "+/")


class StartupError(ValueError):
    """The channel cannot start as configured here (a value out of range, a port in use, an unusable
    state directory or state file). The message is one line, Chinese then English, naming the setting
    and the fix; no traceback helps the operator."""


CORE_SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "wechatcom_corp_id",
        "",
        str,
        "WECHATCOM_CORP_ID",
        "企业ID CorpID / the corp's CorpID",
        ("wechat_kf_corp_id",),
    ),
    SettingSpec(
        "wechatcom_kf_secret",
        "",
        str,
        "WECHATCOM_KF_SECRET",
        "自建应用的 Secret / secret of the self-built app allowed to call the KF API",
        ("wechat_kf_secret",),
        secret=True,
    ),
    SettingSpec(
        "wechatcom_kf_token",
        "",
        str,
        "WECHATCOM_KF_TOKEN",
        "回调 Token / callback Token (接收消息 → 设置API接收)",
        ("wechat_kf_token",),
        secret=True,
    ),
    SettingSpec(
        "wechatcom_kf_aes_key",
        "",
        str,
        "WECHATCOM_KF_AES_KEY",
        "回调 EncodingAESKey（43 个字符）/ callback EncodingAESKey (43 characters)",
        ("wechat_kf_aes_key",),
        secret=True,
    ),
    SettingSpec(
        "wechatcom_kf_port",
        9899,
        int,
        "WECHATCOM_KF_PORT",
        "回调 HTTP 端口 / port of the callback HTTP server (path /wxkf/)",
        ("wechat_kf_port",),
    ),
    SettingSpec(
        "wechatcom_kf_host",
        "0.0.0.0",
        str,
        "WECHATCOM_KF_HOST",
        "回调 HTTP 监听地址 / address the callback HTTP server listens on",
    ),
    SettingSpec(
        "wechatcom_kf_cursor_dir",
        "tmp",
        str,
        "WECHATCOM_KF_CURSOR_DIR",
        "状态目录（游标、待处理消息、媒体）；相对路径按项目根目录解析 / state directory (cursor, "
        "pending messages, media); a relative path is resolved against the project root",
    ),
    SettingSpec(
        "wechatcom_kf_adopt_cursor_file",
        "",
        str,
        "WECHATCOM_KF_ADOPT_CURSOR_FILE",
        "首次启动时接管的上游游标文件（{open_kfid: cursor}），避免重答历史；以 wechat_kf 加载时默认为 "
        "~/.wechat_kf_cursors.json / an upstream cursor file ({open_kfid: cursor}) taken over on the "
        "first start, so history is not answered again; loaded as wechat_kf: ~/.wechat_kf_cursors.json",
        ("wechat_kf_cursor_path",),
    ),
    SettingSpec(
        "wechatcom_kf_skip_history_on_first_start",
        True,
        bool,
        "WECHATCOM_KF_SKIP_HISTORY_ON_FIRST_START",
        "首次启动（无游标）时跳过历史消息，只回复唤醒本次拉取的消息 / on first start (no cursor) skip "
        "history and answer only the message that woke us",
    ),
    SettingSpec(
        "wechatcom_kf_max_message_age_hours",
        48.0,
        float,
        "WECHATCOM_KF_MAX_MESSAGE_AGE_HOURS",
        "停机后只回复不超过该时长的消息（默认等于企业微信 48 小时发送窗口）/ after downtime, answer only "
        "messages younger than this (default: WeCom's 48 h send window)",
    ),
    SettingSpec(
        "wechatcom_kf_merge_window_seconds",
        3.0,
        float,
        "WECHATCOM_KF_MERGE_WINDOW_SECONDS",
        "图片/文件等先到时等待同一用户追问的秒数，合并为一轮 / seconds an image or file waits for the "
        "same customer's question, to be answered as one turn",
    ),
    SettingSpec(
        "wechatcom_kf_api_base",
        WECOM_API_BASE,
        str,
        "WECHATCOM_KF_API_BASE",
        "企业微信 API 地址（沙盒/模拟器时修改）/ WeCom API base URL (changed for the sandbox emulator)",
    ),
    SettingSpec(
        "wechatcom_kf_request_timeout",
        10.0,
        float,
        "WECHATCOM_KF_REQUEST_TIMEOUT",
        "调用企业微信 API 的超时秒数 / timeout in seconds of one WeCom API call",
    ),
    SettingSpec(
        "wechatcom_kf_http_backlog",
        512,
        int,
        "WECHATCOM_KF_HTTP_BACKLOG",
        "回调 HTTP 服务连接队列长度 / accept queue length of the callback HTTP server",
    ),
    SettingSpec(
        "wechatcom_kf_callback_ip_allowlist",
        False,
        bool,
        "WECHATCOM_KF_CALLBACK_IP_ALLOWLIST",
        "只接受企业微信回调 IP（getcallbackip，每小时刷新，保存在状态中；取不到时放行并告警）的连接 / accept "
        "connections only from WeCom's callback IPs (getcallbackip, refreshed hourly, kept in the state; "
        "fails open with a warning when it cannot be fetched)",
    ),
    SettingSpec(
        "wechatcom_kf_allowlist_extra",
        [],
        list,
        "WECHATCOM_KF_ALLOWLIST_EXTRA",
        "开启回调 IP 白名单时另外放行的地址或网段（如健康检查）/ addresses or CIDR networks always let in "
        "when the allowlist is on (e.g. a health checker)",
    ),
    SettingSpec(
        "wechatcom_kf_trusted_proxies",
        [],
        list,
        "WECHATCOM_KF_TRUSTED_PROXIES",
        '反向代理的地址或网段（如 ["127.0.0.1"]）：只有来自它们的 X-Forwarded-For 才被采信 / addresses or '
        'CIDR networks of reverse proxies (e.g. ["127.0.0.1"]): X-Forwarded-For is believed from them only',
    ),
    SettingSpec(
        "wechatcom_kf_max_connections_per_address",
        64,
        int,
        "WECHATCOM_KF_MAX_CONNECTIONS_PER_ADDRESS",
        "同一地址最多同时保持的连接数（0 表示不限），一个地址的洪水占不满全部连接 "
        "/ open connections one address "
        "may hold (0 = no limit), so a flood from one address never takes every slot",
    ),
    SettingSpec(
        "wechatcom_kf_requests_per_address_per_minute",
        6000,
        int,
        "WECHATCOM_KF_REQUESTS_PER_ADDRESS_PER_MINUTE",
        "同一地址每分钟最多的请求数，超出回 429（0 表示不限） "
        "/ requests per minute one address may make, then "
        "429 (0 = no limit)",
    ),
    SettingSpec(
        "wechatcom_kf_request_deadline_seconds",
        10.0,
        float,
        "WECHATCOM_KF_REQUEST_DEADLINE_SECONDS",
        "一个请求的请求头、请求体各自必须在此时间内收完（不会因陆续收到字节而延长） "
        "/ a request's head, and then "
        "its body, must each arrive within this (not extended by trickling bytes)",
    ),
    SettingSpec(
        "wechatcom_kf_replay_window_seconds",
        600.0,
        float,
        "WECHATCOM_KF_REPLAY_WINDOW_SECONDS",
        "回调 timestamp 与本机时间相差超过此秒数则拒绝；窗口内相同的回调只拉取一次 "
        "/ callbacks whose timestamp "
        "is further than this from now are refused; an identical callback within it pulls only once",
    ),
    SettingSpec(
        "wechatcom_kf_own_dispatch",
        True,
        bool,
        "WECHATCOM_KF_OWN_DISPATCH",
        "在上游 CoW 中用渠道自己的线程处理每一轮（并发数取 max_concurrent_sessions，默认 64），而不是 CoW "
        "的 8 线程轮询队列；本项目运行时中无影响 / inside an upstream CoW, run each turn on the channel's "
        "own workers (max_concurrent_sessions of them, 64 by default) instead of CoW's polled 8-thread "
        "queue; no effect in this runtime",
    ),
    SettingSpec(
        "wechatcom_kf_redis_url",
        "",
        str,
        "WECHATCOM_KF_REDIS_URL",
        "状态存储：空表示本机 JSON 文件（单实例）；redis:// 地址表示多个实例共享同一份状态 / state store: "
        "empty = a local JSON file (one instance); a redis:// URL = state shared by several instances",
        secret=True,  # a Redis URL can carry a password
    ),
    SettingSpec(
        "wechatcom_kf_redis_cluster",
        False,
        bool,
        "WECHATCOM_KF_REDIS_CLUSTER",
        "Redis 为集群模式（Redis Cluster，非代理）时设为 true / true when the Redis is a Redis Cluster "
        "(cluster mode, not a proxy)",
    ),
    SettingSpec(
        "wechatcom_kf_redis_start_wait_seconds",
        30.0,
        float,
        "WECHATCOM_KF_REDIS_START_WAIT_SECONDS",
        "启动时 Redis 尚未就绪则最多等待这么多秒，之后以退出码 1 停止（由 systemd/compose 重启）/ at start, "
        "wait this long for Redis to answer, then stop with exit code 1 (systemd/compose restarts it)",
    ),
    SettingSpec(
        "wechatcom_kf_redis_prefix",
        "wechatcom_kf:",
        str,
        "WECHATCOM_KF_REDIS_PREFIX",
        "Redis 键前缀（多套部署共用一个 Redis 时区分）/ prefix of the Redis keys (tells deployments "
        "sharing one Redis apart)",
    ),
    SettingSpec(
        "wechatcom_kf_metrics_port",
        0,
        int,
        "WECHATCOM_KF_METRICS_PORT",
        "Prometheus 指标端口（/metrics，需 prometheus_client）；0 表示关闭（默认），不能与回调端口相同 / "
        "port of the Prometheus metrics server (/metrics, needs prometheus_client); 0 = off (the "
        "default); never the callback port",
    ),
    SettingSpec(
        "wechatcom_kf_metrics_host",
        "127.0.0.1",
        str,
        "WECHATCOM_KF_METRICS_HOST",
        "指标服务监听地址；默认只在本机，公网无法读取 / address the metrics server listens on; loopback by "
        "default, so the public cannot read it",
    ),
    SettingSpec(
        "wechatcom_kf_drain_seconds",
        0.0,
        float,
        "WECHATCOM_KF_DRAIN_SECONDS",
        "停止时先让 /readyz 返回 503 并继续服务这么多秒，再关闭回调端口（负载均衡后面的多实例设为"
        "探测间隔的 2–3 倍） / on stop, answer /readyz 503 and keep serving this long before the "
        "callback port closes (several instances behind a load balancer: 2–3 times its probe interval)",
    ),
)
KF_SETTINGS: tuple[SettingSpec, ...] = CORE_SETTINGS + DESK_SETTINGS
ALIAS_OF = {alias: spec.name for spec in KF_SETTINGS for alias in spec.aliases}


@dataclass(frozen=True)
class KfSettings:
    wechatcom_corp_id: str
    wechatcom_kf_secret: str
    wechatcom_kf_token: str
    wechatcom_kf_aes_key: str
    wechatcom_kf_port: int
    wechatcom_kf_host: str
    wechatcom_kf_cursor_dir: str
    wechatcom_kf_adopt_cursor_file: str
    wechatcom_kf_skip_history_on_first_start: bool
    wechatcom_kf_max_message_age_hours: float
    wechatcom_kf_merge_window_seconds: float
    wechatcom_kf_api_base: str
    wechatcom_kf_request_timeout: float
    wechatcom_kf_http_backlog: int
    wechatcom_kf_callback_ip_allowlist: bool
    wechatcom_kf_allowlist_extra: list[str]
    wechatcom_kf_trusted_proxies: list[str]
    wechatcom_kf_max_connections_per_address: int
    wechatcom_kf_requests_per_address_per_minute: int
    wechatcom_kf_request_deadline_seconds: float
    wechatcom_kf_replay_window_seconds: float
    wechatcom_kf_own_dispatch: bool
    wechatcom_kf_redis_url: str
    wechatcom_kf_redis_cluster: bool
    wechatcom_kf_redis_prefix: str
    wechatcom_kf_redis_start_wait_seconds: float
    wechatcom_kf_metrics_port: int
    wechatcom_kf_metrics_host: str
    wechatcom_kf_drain_seconds: float
    desk: DeskConfig = field(default_factory=DeskConfig.defaults)

    def missing_required(self) -> list[str]:
        required = ("wechatcom_corp_id", "wechatcom_kf_secret", "wechatcom_kf_token", "wechatcom_kf_aes_key")
        return [name for name in required if not getattr(self, name)]

    def __repr__(self) -> str:  # secrets must never reach a log line through repr()
        secret_names = {spec.name for spec in KF_SETTINGS if spec.secret}
        shown = ", ".join(
            f"{f.name}={'***' if f.name in secret_names else repr(getattr(self, f.name))}"
            for f in fields(self)
            if f.name != "desk"
        )
        return f"KfSettings({shown})"


_MISSING = object()


def parse_setting_value(raw: str, kind: type) -> Any:
    """``setting_spec.parse_setting_value``; a number that is none says so in both languages."""
    if kind in (int, float):
        return _number(raw, kind)
    return setting_spec.parse_setting_value(raw, kind)


def coerce_setting_value(value: Any, kind: type) -> Any:
    """``setting_spec.coerce_setting_value``, with :func:`parse_setting_value`'s number messages."""
    if kind in (int, float) and isinstance(value, str):
        return _number(value, kind)
    return setting_spec.coerce_setting_value(value, kind)


def _number(raw: str, kind: type) -> int | float:
    try:
        return int(raw.strip()) if kind is int else float(raw.strip())
    except ValueError:
        zh, en = ("整数", "an integer") if kind is int else ("数字", "a number")
        raise ValueError(f"应为{zh}，实际为 {raw!r} / expected {en}, got {raw!r}") from None


def setting_source(name: str, environ: Mapping[str, str]) -> tuple[str, str]:
    """Where ``name``'s value came from, (Chinese, English): its environment variable wins when set."""
    spec = next(spec for spec in KF_SETTINGS if spec.name == name)
    for env_name in [spec.env or "", *(alias.upper() for alias in spec.aliases)]:
        if env_name and env_name in environ:
            return f"环境变量 {env_name}", f"environment variable {env_name}"
    return name, name


def aes_key_problem(key: str) -> str | None:
    """Which rule a non-empty ``wechatcom_kf_aes_key`` breaks (exactly 43 of A-Z a-z 0-9 + /), or None.

    Never shows the key: it is a secret.
    """
    fix_zh = "请从 接收消息 → 设置API接收 重新复制 EncodingAESKey"
    fix_en = "copy the EncodingAESKey again from 接收消息 → 设置API接收 (receive messages → API settings)"
    if len(key) != AES_KEY_LENGTH:
        spaces = len(key.strip()) == AES_KEY_LENGTH
        extra_zh, extra_en = ("（首尾有空白）", " (with whitespace around it)") if spaces else ("", "")
        return (
            f"wechatcom_kf_aes_key 有 {len(key)} 个字符{extra_zh}，应恰好 {AES_KEY_LENGTH} 个：{fix_zh} / "
            f"wechatcom_kf_aes_key has {len(key)} characters{extra_en}, not exactly {AES_KEY_LENGTH}: "
            f"{fix_en}"
        )
    bad = next((i for i, char in enumerate(key) if char not in _AES_KEY_ALPHABET), None)
    if bad is None:
        return None
    return (
        f"wechatcom_kf_aes_key 的第 {bad + 1} 个字符不是 A-Z a-z 0-9 + / 之一：{fix_zh} / "
        f"character {bad + 1} of wechatcom_kf_aes_key is not one of A-Z a-z 0-9 + /: {fix_en}"
    )


def port_problem(port: int, environ: Mapping[str, str]) -> str | None:
    """``wechatcom_kf_port`` outside 0-65535 (0: any free port, for tests), or None."""
    if 0 <= port <= 65535:
        return None
    zh, en = setting_source("wechatcom_kf_port", environ)
    return (
        f"回调端口 {zh} 的值 {port} 超出范围：请设为 1 到 65535 之间的端口（默认 9899）/ "
        f"{en} is {port}, out of range: set it to a port between 1 and 65535 (default 9899)"
    )


def invalid_setting(settings: KfSettings, environ: Mapping[str, str] | None = None) -> str | None:
    """The first value that cannot work (port range, AES key format), or None; run after
    ``missing_required``, so an empty key is reported as missing."""
    environ = os.environ if environ is None else environ
    return port_problem(settings.wechatcom_kf_port, environ) or aes_key_problem(settings.wechatcom_kf_aes_key)


def _read_one(
    spec: SettingSpec, conf_get: Callable[[str, Any], Any], environ: Mapping[str, str], default: Any
) -> Any:
    env_names = [spec.env] if spec.env else []
    env_names += [alias.upper() for alias in spec.aliases]
    for env_name in env_names:
        if env_name in environ:
            try:
                return parse_setting_value(environ[env_name], spec.kind)
            except ValueError as exc:
                raise ValueError(f"environment variable {env_name}: {exc}") from None
    for key in (spec.name, *spec.aliases):
        value = conf_get(key, _MISSING)
        if value is not _MISSING and value is not None:
            try:
                return coerce_setting_value(value, spec.kind)
            except ValueError as exc:
                raise ValueError(f"config key {key}: {exc}") from None
    return default


class _Config(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...


def load_kf_settings(
    config: _Config, environ: Mapping[str, str] | None = None, *, defaults: Mapping[str, Any] | None = None
) -> KfSettings:
    """Read every channel setting once; raises ValueError naming the key on a malformed value.

    ``environ`` None: ``os.environ``, unless the host's config already applied the environment.
    ``defaults`` replace declared defaults (upstream's ``wechat_kf`` listens on 9888 by default).
    A host whose ``get`` raises for keys it does not know (CoW 1.x) reads as "not set".
    """
    if environ is None:
        environ = {} if getattr(config, "applies_environment", False) else os.environ
    chosen = dict(defaults or {})
    explicit = getattr(config, "explicit_keys", None)  # this runtime fills in declared defaults

    def conf_get(key: str, default: Any) -> Any:
        name = ALIAS_OF.get(key, key)
        if explicit is not None and name in chosen and name not in explicit:
            return default  # a declared default, not the user's: the name-specific one applies
        return safe_get(config, key, default)

    values = {
        spec.name: _read_one(spec, conf_get, environ, chosen.get(spec.name, spec.default))
        for spec in KF_SETTINGS
    }
    core = {name: value for name, value in values.items() if name not in DESK_SETTING_NAMES}
    desk = {name: value for name, value in values.items() if name in DESK_SETTING_NAMES}
    return KfSettings(**core, desk=DeskConfig.from_values(desk))
