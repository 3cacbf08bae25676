"""The doctor's checks of this host: settings, the callback port, the state store, ffmpeg."""

from __future__ import annotations

import errno
import json
import socket
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .doctor_results import FAIL, OK, WARN, Context, Result, bilingual, skipped
from .host import web_console_port
from .redaction import redact, register_secret
from .settings import KF_SETTINGS, KfSettings, load_kf_settings
from .store.base import RawItem

# --- 1. settings ------------------------------------------------------------------------------------


def _with_env(names: Iterable[str]) -> str:
    env = {spec.name: spec.env for spec in KF_SETTINGS}
    return ", ".join(f"{name} ({env[name]})" if env.get(name) else name for name in names)


def check_settings(ctx: Context) -> Result:
    try:
        settings = load_kf_settings(ctx.config)
    except ValueError as exc:
        return Result(
            FAIL,
            bilingual("配置值无效", "a setting has an invalid value", exc),
            bilingual("改正上面点名的配置项", "correct the setting named above"),
        )
    missing = settings.missing_required()
    if missing:
        names = _with_env(missing)
        return Result(
            FAIL,
            bilingual(f"缺少必填配置：{names}", f"required settings missing: {names}"),
            bilingual(
                f"在 config.json 或环境变量中设置 {names}", f"set {names} in config.json or the environment"
            ),
        )
    console = web_console_port(ctx.config)
    if console is not None and console == settings.wechatcom_kf_port:
        return Result(
            FAIL,
            bilingual(
                f"wechatcom_kf_port {console} 与 CoW 网页控制台端口相同",
                f"wechatcom_kf_port {console} is the port of CoW's web console",
            ),
            bilingual("把 wechatcom_kf_port 改为其他端口", "set wechatcom_kf_port to another port"),
        )
    ctx.settings = settings
    where = f"{settings.wechatcom_corp_id}, {settings.wechatcom_kf_host}:{settings.wechatcom_kf_port}"
    return Result(
        OK, bilingual(f"已加载，必填项齐全（{where}）", f"loaded, every required setting is set ({where})")
    )


# --- 4. callback port -------------------------------------------------------------------------------


def bind_problem(host: str, port: int) -> OSError | None:
    """Bind (and close) every address the callback server would listen on; the first error, or None."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return exc
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                return exc
    return None


def _bind_failure(where: str, port: int, exc: OSError) -> Result:
    if exc.errno == errno.EADDRINUSE:
        return Result(
            FAIL,
            bilingual(
                f"{where} 已被占用（渠道已在运行？）", f"{where} is already in use (is the channel running?)"
            ),
            bilingual(
                "停止占用该端口的进程，或把 wechatcom_kf_port 改为空闲端口",
                "stop the process holding it, or set wechatcom_kf_port to a free port",
            ),
        )
    if exc.errno == errno.EACCES:
        return Result(
            FAIL,
            bilingual(f"无权绑定 {where}", f"no permission to bind {where}"),
            bilingual(
                "使用 1024 以上的端口（前面放反向代理）",
                f"use a port above 1024 (behind a reverse proxy) instead of {port}",
            ),
        )
    reason = exc.strerror or type(exc).__name__
    return Result(
        FAIL,
        bilingual(f"无法绑定 {where}：{reason}", f"cannot bind {where}: {reason}"),
        bilingual(
            "wechatcom_kf_host 应为 0.0.0.0 或本机地址",
            "set wechatcom_kf_host to 0.0.0.0 or an address of this host",
        ),
    )


def check_port(ctx: Context) -> Result:
    settings = ctx.settings
    if settings is None:
        return skipped("settings")
    host, port = settings.wechatcom_kf_host, settings.wechatcom_kf_port
    where = f"{host or '*'}:{port}"
    problem = bind_problem(host, port)
    if problem is not None:
        return _bind_failure(where, port, problem)
    if port == 0:
        return Result(OK, bilingual("端口 0：启动时任选空闲端口", "port 0: any free port is taken at start"))
    return Result(OK, bilingual(f"{where} 可以绑定", f"{where} can be bound"))


# --- 5. state directory or Redis --------------------------------------------------------------------


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _writable_problem(directory: Path) -> str | None:
    """Why a file cannot be created in ``directory`` (its nearest existing ancestor), or None."""
    target = _nearest_existing(directory)
    if not target.is_dir():
        return f"{target} is not a directory"
    try:
        with tempfile.NamedTemporaryFile(dir=target, prefix=".wechatcom_kf_doctor_"):
            pass  # created, then removed on leaving
    except OSError as exc:
        return f"{target}: {exc.strerror or type(exc).__name__}"
    return None


def _json_reader(state_dir: Path) -> Callable[[], list[RawItem]]:
    from .store.main_file import FILE_NAME, read_main_file

    def read() -> list[RawItem]:  # read-only: the main file as the channel left it
        accounts = read_main_file(state_dir / FILE_NAME).accounts
        return [json.loads(text) for account in accounts.values() for text in account.pending.values()]

    return read


def check_state_dir(ctx: Context, settings: KfSettings) -> Result:
    from .store import StoreError
    from .wechatcom_kf_channel import resolve_state_dir

    state_dir = resolve_state_dir(settings.wechatcom_kf_cursor_dir)
    problem = _writable_problem(state_dir)
    if problem:
        return Result(
            FAIL,
            bilingual(f"状态目录不可写：{problem}", f"the state directory is not writable: {problem}"),
            bilingual(
                "让运行用户可写该目录，或修改 wechatcom_kf_cursor_dir",
                "make it writable for this user, or set wechatcom_kf_cursor_dir",
            ),
        )
    reader = _json_reader(state_dir)
    try:
        reader()
    except StoreError as exc:
        return Result(FAIL, bilingual("状态文件无法使用", "the state file is unusable", exc))
    ctx.read_recent = reader
    later = "" if state_dir.exists() else "（首次启动时创建）"
    later_en = "" if state_dir.exists() else " (created at the first start)"
    return Result(
        OK, bilingual(f"状态目录可写：{state_dir}{later}", f"state directory writable: {state_dir}{later_en}")
    )


def _redis_client(settings: KfSettings) -> Any:
    import redis
    from redis.cluster import RedisCluster

    make = RedisCluster.from_url if settings.wechatcom_kf_redis_cluster else redis.Redis.from_url
    return make(settings.wechatcom_kf_redis_url, socket_timeout=5.0, socket_connect_timeout=5.0)


def _redis_reader(client: Any, prefix: str) -> Callable[[], list[RawItem]]:
    def read() -> list[RawItem]:
        from .store.redis_store import RedisStore

        store = RedisStore(client, prefix=prefix)  # the client stays ours (closed with the context)
        return [item for kfid in store.pending_accounts() for item in store.pending(kfid)]

    return read


def check_redis(ctx: Context, settings: KfSettings) -> Result:
    url = settings.wechatcom_kf_redis_url
    register_secret(urlsplit(url).password)
    where = f"{urlsplit(url).hostname}:{urlsplit(url).port or 6379}"
    try:
        client = _redis_client(settings)
    except ImportError:
        return Result(FAIL, bilingual("未安装 redis 包", "the redis package is missing"), "pip install redis")
    except ValueError as exc:
        return Result(
            FAIL, bilingual("wechatcom_kf_redis_url 无效", "wechatcom_kf_redis_url is invalid", exc)
        )
    ctx.on_close(client.close)
    try:
        client.ping()
    except Exception as exc:  # redis-py raises many kinds: connection, auth, timeout, cluster errors
        reason = redact(f"{type(exc).__name__}: {exc}")
        return Result(
            FAIL,
            bilingual(f"Redis {where} 无法连接", f"Redis at {where} does not answer PING", reason),
            bilingual(
                "检查 wechatcom_kf_redis_url（地址、密码、TLS）和 Redis 是否运行",
                "check wechatcom_kf_redis_url (address, password, TLS) and that Redis runs",
            ),
        )
    ctx.read_recent = _redis_reader(client, settings.wechatcom_kf_redis_prefix)
    return Result(OK, bilingual(f"Redis {where} 回应 PING", f"Redis at {where} answers PING"))


def check_state(ctx: Context) -> Result:
    settings = ctx.settings
    if settings is None:
        return skipped("settings")
    if settings.wechatcom_kf_redis_url:
        return check_redis(ctx, settings)
    return check_state_dir(ctx, settings)


# --- 6. ffmpeg --------------------------------------------------------------------------------------


def check_ffmpeg(ctx: Context) -> Result:
    from .outbound.audio import amr_ffmpeg

    path = amr_ffmpeg()
    if path:
        return Result(OK, bilingual(f"可编码 AMR 的 ffmpeg：{path}", f"AMR-capable ffmpeg: {path}"))
    return Result(
        WARN,
        bilingual(
            "没有可编码 AMR 的 ffmpeg：语音回复改发文字，客户语音无法转写",
            "no AMR-capable ffmpeg: voice replies go out as text and customers' voice is not transcribed",
        ),
        bilingual(
            "pip install imageio-ffmpeg（或安装带 libopencore_amrnb 的 ffmpeg）",
            "pip install imageio-ffmpeg (or an ffmpeg built with libopencore_amrnb)",
        ),
    )
