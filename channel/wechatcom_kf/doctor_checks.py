"""The checks of ``python app.py --doctor`` (run and printed by ``doctor.py``).

Each check takes the shared :class:`Context`, may leave something in it for the checks after it (the
settings, a client with a working token, the accounts it sees, a reader of the state store) and
returns one :class:`Result`: a status, a summary and, when something is wrong, the fix, each in
Chinese and English. A check whose prerequisite failed is skipped (it would only repeat the failure).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from .api import KfApi
from .errors import KfError, KfNetworkError, errcode_hint
from .host import HostConfig, runs_in_this_runtime, safe_get, web_console_port
from .redaction import redact, register_secret
from .retry import ONCE
from .settings import KF_SETTINGS, KfSettings, load_kf_settings
from .store.base import RawItem

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"
PROBE_TIMEOUT_SECONDS = 10.0  # model endpoint and WeCom calls: a doctor should answer quickly
MAX_CUSTOMERS = 10  # kf/service_state/get calls of the last check
MAX_ACCOUNTS_SHOWN = 10
STATE_HUMAN = (2, 3)  # queued in the pool / with a receptionist: the bot stays silent by design
# This runtime's bot names and defaults (``models/bot_factory.py``, ``config.py``; the channel package
# imports nothing of the host but its contract, so they are repeated here and a test keeps them in step).
ECHO, OPENAI, DIFY = "echo", "openai", "dify"
OPENAI_BOT_TYPES = ("openai", "chatgpt", "gpt")  # any letter case
DEFAULT_MODEL_BASE = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_DIFY_BASE = "https://api.dify.ai/v1"


def bilingual(zh: str, en: str, detail: object = "") -> str:
    """ "中文 / English", then ``: detail`` (an error text, usually English) when there is one."""
    return f"{zh} / {en}: {detail}" if detail else f"{zh} / {en}"


@dataclass(frozen=True)
class Result:
    status: str  # OK, WARN, FAIL or SKIP
    summary: str
    fix: str = ""


@dataclass
class Context:
    """What the checks share, filled in as they pass."""

    config: HostConfig
    sandbox: bool = False
    settings: KfSettings | None = None
    api: KfApi | None = None  # set once gettoken worked
    accounts: list[dict[str, Any]] | None = None  # what kf/account/list answered
    read_recent: Callable[[], list[RawItem]] | None = None  # the state store's recent items
    # This runtime's own verdict on its bot settings: (kind "echo"/"openai"/"dify", problem or None).
    # None inside another host, whose bots the channel knows nothing about.
    runtime_bot: Callable[[], tuple[str, str | None]] | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        return safe_get(self.config, key, default)

    def on_close(self, closer: Callable[[], None]) -> None:
        self._closers.append(closer)

    def close(self) -> None:
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):  # closing a client must not hide the report
                closer()
        self._closers.clear()


def skipped(prerequisite: str) -> Result:
    return Result(SKIP, bilingual(f"跳过：{prerequisite} 未通过", f"skipped: {prerequisite} did not pass"))


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


# --- 2. gettoken ------------------------------------------------------------------------------------

_FROM_IP_RE = re.compile(r"from ip:\s*([0-9A-Fa-f.:]+[0-9A-Fa-f])")
_IPV4_RE = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")


def ip_in_errmsg(errmsg: str) -> str | None:
    """The caller's address WeCom names in a 60020 errmsg ("... from ip: 1.2.3.4, ..."), if any."""
    match = _FROM_IP_RE.search(errmsg)
    if match:
        return match.group(1)
    match = _IPV4_RE.search(errmsg)
    return match.group(0) if match else None


def _trusted_ip_failure(err: KfError) -> Result:
    ip = ip_in_errmsg(err.errmsg or str(err))
    address_zh, address_en = (
        (f"本机出口 IP {ip}", f"this server's IP {ip}") if ip else ("本机出口 IP", "this server's IP")
    )
    add = ip or "本机出口 IP / this server's IP"
    return Result(
        FAIL,
        bilingual(
            f"{address_zh}不在应用的「企业可信IP」中（errcode 60020）",
            f"{address_en} is not in the app's trusted IPs, 企业可信IP (errcode 60020)",
        ),
        bilingual(
            f"应用管理 → 自建应用 → 企业可信IP：添加 {add}",
            f"add {add} under 应用管理 → the self-built app → 企业可信IP",
        ),
    )


def _errcode_failure(api: str, err: KfError) -> Result:
    """A refusal without a dedicated explanation: the errcode, its text and the channel's hint."""
    hint = errcode_hint(err.errcode) or "look it up in WeCom's errcode table (document 90313)"
    return Result(
        FAIL,
        bilingual(f"{api} 失败", f"{api} failed", f"errcode {err.errcode}: {err.errmsg or err}"),
        bilingual(f"按 errcode {err.errcode} 的说明处理", hint),
    )


def _network_failure(api: str, err: KfError, base: str) -> Result:
    return Result(
        FAIL,
        bilingual(f"无法连接企业微信 API {base}", f"cannot reach the WeCom API at {base}", err),
        bilingual(
            "检查网络、代理（HTTPS_PROXY）和 wechatcom_kf_api_base",
            "check the network, the proxy (HTTPS_PROXY) and wechatcom_kf_api_base",
        ),
    )


_TOKEN_FAILURES: dict[int, tuple[str, str, str, str]] = {
    40001: (
        "wechatcom_kf_secret 无效（errcode 40001）",
        "wechatcom_kf_secret is invalid (errcode 40001)",
        "把 wechatcom_kf_secret 设为「应用管理 → 自建应用」里该应用的 Secret，不是微信客服管理员/客服系统的 "
        "Secret；并确认 wechatcom_corp_id 属于同一企业",
        "set wechatcom_kf_secret to the Secret of the self-built app (应用管理 → 自建), not the KF admin's "
        "secret, and check that wechatcom_corp_id is the same corp",
    ),
    40013: (
        "wechatcom_corp_id 无效（errcode 40013）",
        "wechatcom_corp_id is invalid (errcode 40013)",
        "从「我的企业 → 企业信息 → 企业ID」复制 CorpID（ww 开头）到 wechatcom_corp_id",
        "copy the CorpID (starts with ww) from 我的企业 → 企业信息 → 企业ID into wechatcom_corp_id",
    ),
    48002: (
        "API 无权限（errcode 48002）",
        "API forbidden (errcode 48002)",
        "使用自建应用的 Secret（不是独立微信客服管理后台的），"
        "并在「微信客服 → API → 可调用接口的应用」中添加该应用",
        "use the self-built app's Secret (not the standalone KF admin's) and add that app under "
        "微信客服 → API → 可调用接口的应用",
    ),
}


def token_failure(err: KfError, base: str) -> Result:
    """Why gettoken failed, and what to change."""
    if isinstance(err, KfNetworkError):
        return _network_failure("gettoken", err, base)
    if err.errcode == 60020:
        return _trusted_ip_failure(err)
    known = _TOKEN_FAILURES.get(err.errcode or 0)
    if known is None:
        return _errcode_failure("gettoken", err)
    summary_zh, summary_en, fix_zh, fix_en = known
    return Result(FAIL, bilingual(summary_zh, summary_en), bilingual(fix_zh, fix_en))


def _make_api(ctx: Context, settings: KfSettings) -> KfApi:
    api = KfApi(
        settings.wechatcom_corp_id,
        settings.wechatcom_kf_secret,
        api_base=settings.wechatcom_kf_api_base,
        timeout=min(settings.wechatcom_kf_request_timeout, PROBE_TIMEOUT_SECONDS),
        quick=ONCE,  # report what WeCom answers now, not after a round of retries
        pool_size=2,
    )
    ctx.on_close(api.close)
    return api


def check_token(ctx: Context) -> Result:
    settings = ctx.settings
    if settings is None:
        return skipped("settings")
    api = _make_api(ctx, settings)
    try:
        api.access_token()
    except KfError as err:
        return token_failure(err, settings.wechatcom_kf_api_base)
    ctx.api = api
    return Result(OK, bilingual("已取得 access_token", "access_token obtained"))


# --- 3. kf/account/list -----------------------------------------------------------------------------


def _accounts_text(accounts: list[dict[str, Any]]) -> str:
    shown = [f"{a.get('name') or '?'} ({a['open_kfid']})" for a in accounts[:MAX_ACCOUNTS_SHOWN]]
    if len(accounts) > MAX_ACCOUNTS_SHOWN:
        shown.append(f"+{len(accounts) - MAX_ACCOUNTS_SHOWN}")
    return ", ".join(shown)


def check_accounts(ctx: Context) -> Result:
    if ctx.api is None or ctx.settings is None:
        return skipped("gettoken")
    try:
        accounts = ctx.api.list_accounts()
    except KfError as err:
        if isinstance(err, KfNetworkError):
            return _network_failure("kf/account/list", err, ctx.settings.wechatcom_kf_api_base)
        return _errcode_failure("kf/account/list", err)
    ctx.accounts = accounts
    if not accounts:
        return Result(
            FAIL,
            bilingual(
                "本应用看不到任何客服账号",
                "no KF account is bound to this app: 微信客服 → API → 可调用接口的应用",
            ),
            bilingual(
                "在「微信客服 → API → 可调用接口的应用」中添加本应用，并把客服账号交给 API 管理",
                "add this app under 微信客服 → API → 可调用接口的应用 and assign the KF accounts to it",
            ),
        )
    text = _accounts_text(accounts)
    n = len(accounts)
    return Result(
        OK, bilingual(f"可见 {n} 个客服账号：{text}", f"this secret sees {n} KF account(s): {text}")
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


# --- 7. model endpoint ------------------------------------------------------------------------------


def _shown_url(url: str) -> str:
    """``url`` without user:password, for the report."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return f"{parts.scheme}://{netloc}{parts.path}"


def _model_session(base: str, proxy: str) -> requests.Session:
    from .api.transport import environment_proxies

    session = requests.Session()
    session.trust_env = False
    session.proxies = {"http": proxy, "https": proxy} if proxy else environment_proxies(base)
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return session


def _chat_probe(session: requests.Session, base: str, key: str, model: str) -> requests.Response:
    """One chat completion of at most one token (for endpoints without a model list)."""
    body = {"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
    return session.post(
        f"{base}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=PROBE_TIMEOUT_SECONDS,
    )


def _listed_models(resp: requests.Response) -> list[str] | None:
    """The model ids of a ``/models`` answer, or None when it lists none in OpenAI's shape."""
    if not resp.ok:
        return None
    try:
        data = resp.json().get("data")
    except (ValueError, AttributeError):
        return None
    if not isinstance(data, list):
        return None
    return [str(entry.get("id")) for entry in data if isinstance(entry, dict) and entry.get("id")]


def _model_answer(resp: requests.Response, shown: str, model: str, listed: list[str] | None) -> Result:
    status = resp.status_code
    if status in (401, 403):
        return Result(
            FAIL,
            bilingual(
                f"模型服务拒绝了 open_ai_api_key（HTTP {status}）",
                f"{shown} refused open_ai_api_key (HTTP {status})",
            ),
            bilingual(
                "检查 open_ai_api_key", "check open_ai_api_key (and that it belongs to open_ai_api_base)"
            ),
        )
    if not resp.ok:
        return Result(
            FAIL,
            bilingual(f"模型服务返回 HTTP {status}", f"{shown} answered HTTP {status}"),
            bilingual("检查 open_ai_api_base 与 model", "check open_ai_api_base and model"),
        )
    if listed and model not in listed:
        return Result(
            WARN,
            bilingual(
                f"{shown} 可用，但模型列表中没有 {model}",
                f"{shown} answers, but {model} is not in its model list",
            ),
            bilingual("检查 model 配置", "check the model setting"),
        )
    return Result(
        OK, bilingual(f"模型服务 {shown} 可用（{model}）", f"model endpoint {shown} answers ({model})")
    )


def probe_dify(base: str, key: str, proxy: str) -> Result:
    """``GET /parameters`` of the Dify app: authenticated, answers without running the app."""
    register_secret(key)
    shown = _shown_url(base)
    session = _model_session(base, proxy)
    try:
        resp = session.get(
            f"{base}/parameters", headers={"Authorization": f"Bearer {key}"}, timeout=PROBE_TIMEOUT_SECONDS
        )
    except requests.RequestException as exc:
        return Result(
            FAIL,
            bilingual(f"Dify {shown} 无法连接", f"Dify at {shown} is unreachable", type(exc).__name__),
            bilingual("检查 dify_api_base、网络与 proxy", "check dify_api_base, the network and proxy"),
        )
    finally:
        session.close()
    if resp.status_code in (401, 403):
        return Result(
            FAIL,
            bilingual(
                f"Dify 拒绝了 dify_api_key（HTTP {resp.status_code}）",
                f"Dify refused dify_api_key (HTTP {resp.status_code})",
            ),
            bilingual(
                "使用该应用「访问 API」页的 API 密钥",
                "use the API key of the app's 访问 API (API access) page",
            ),
        )
    if not resp.ok:
        return Result(
            FAIL,
            bilingual(
                f"Dify 返回 HTTP {resp.status_code}", f"Dify at {shown} answered HTTP {resp.status_code}"
            ),
            bilingual("检查 dify_api_base（以 /v1 结尾）", "check dify_api_base (it ends in /v1)"),
        )
    return Result(OK, bilingual(f"Dify 应用 {shown} 可用", f"the Dify app at {shown} answers"))


def probe_model(base: str, key: str, model: str, proxy: str) -> Result:
    """One small request: the model list, else a 1-token chat completion; 10 s timeout."""
    shown = _shown_url(base)
    session = _model_session(base, proxy)
    auth = {"Authorization": f"Bearer {key}"}
    try:
        resp = session.get(f"{base}/models", headers=auth, timeout=PROBE_TIMEOUT_SECONDS)
        listed = _listed_models(resp)
        if resp.status_code in (404, 405):  # no model list at this endpoint
            resp, listed = _chat_probe(session, base, key, model), None
    except requests.RequestException as exc:
        what = "超时" if isinstance(exc, requests.Timeout) else "无法连接"
        return Result(
            FAIL,
            bilingual(
                f"模型服务 {shown} {what}", f"the model endpoint {shown} is unreachable", type(exc).__name__
            ),
            bilingual("检查 open_ai_api_base、网络与 proxy", "check open_ai_api_base, the network and proxy"),
        )
    finally:
        session.close()
    return _model_answer(resp, shown, model, listed)


def _missing_key(bot_type: str) -> Result:
    echo_zh, echo_en = (
        ("，或设置 bot_type 为 echo", ', or "bot_type": "echo" on purpose') if not bot_type else ("", "")
    )
    return Result(
        FAIL,
        bilingual("open_ai_api_key 为空，机器人无法回答", "open_ai_api_key is empty: the bot cannot answer"),
        bilingual(
            f"设置 open_ai_api_key（或 OPEN_AI_API_KEY）{echo_zh}",
            f"set open_ai_api_key (or OPEN_AI_API_KEY){echo_en}",
        ),
    )


def _unknown_bot(ctx: Context, bot_type: str) -> Result:
    if runs_in_this_runtime(ctx.config):  # app.py refuses to start with it
        known = ", ".join((ECHO, *OPENAI_BOT_TYPES))
        return Result(
            FAIL,
            bilingual(f"未知的 bot_type {bot_type!r}", f"unknown bot_type {bot_type!r}"),
            bilingual(f"可用：{known}", f"known types: {known} (any letter case)"),
        )
    return Result(
        WARN,
        bilingual(f"bot_type {bot_type!r} 未检查", f"bot_type {bot_type!r} is not checked"),
        bilingual("只探测 OpenAI 兼容接口", "only OpenAI-compatible endpoints are probed"),
    )


def bot_kind(ctx: Context) -> str | Result:
    """``ECHO``, ``OPENAI`` or ``DIFY`` as this runtime picks the bot (its own check, when it gave
    one), or the Result saying why no bot would answer: an empty bot_type means openai with a key,
    else echo (a problem outside the sandbox)."""
    if ctx.runtime_bot is not None:
        kind, problem = ctx.runtime_bot()
        if problem is not None:
            return Result(
                FAIL,
                bilingual("模型配置无法回答客户", "the bot settings cannot answer customers", problem),
                bilingual("见 docs/models.md", "see docs/models.md"),
            )
        return kind
    bot_type = str(ctx.get("bot_type", "") or "").strip()
    has_key = bool(str(ctx.get("open_ai_api_key", "") or "").strip())
    name = bot_type.lower()
    if name == ECHO or (not name and not has_key and ctx.sandbox):
        return ECHO
    if name in OPENAI_BOT_TYPES or not name:
        return OPENAI if has_key else _missing_key(bot_type)
    return _unknown_bot(ctx, bot_type)


def check_model(ctx: Context) -> Result:
    kind = bot_kind(ctx)
    if isinstance(kind, Result):
        return kind
    if kind == ECHO and ctx.sandbox:  # the point of the sandbox, as app.py sees it
        return Result(OK, bilingual("沙盒：echo 机器人回复", "sandbox: the echo bot answers"))
    if kind == ECHO:
        return Result(
            WARN,
            bilingual(
                "bot_type 为 echo：客户收到的是自己的原话（「你说：…」）",
                "bot_type is echo: customers get echoes",
            ),
            bilingual("设置 bot_type 和 open_ai_api_key 以使用真实模型", "set bot_type and open_ai_api_key"),
        )
    if kind == DIFY:
        return probe_dify(
            str(ctx.get("dify_api_base", "") or DEFAULT_DIFY_BASE).rstrip("/"),
            str(ctx.get("dify_api_key", "") or "").strip(),
            str(ctx.get("proxy", "") or ""),
        )
    key = str(ctx.get("open_ai_api_key", "") or "").strip()
    register_secret(key)
    base = str(ctx.get("open_ai_api_base", "") or DEFAULT_MODEL_BASE).rstrip("/")
    model = str(ctx.get("model", "") or DEFAULT_MODEL)
    return probe_model(base, key, model, str(ctx.get("proxy", "") or ""))


# --- 8. receives but cannot reply (95018) -----------------------------------------------------------


def recent_customers(items: list[RawItem], accounts: set[str] | None, limit: int) -> list[tuple[str, str]]:
    """(open_kfid, external_userid) of the latest customers in ``items``, newest first, each once."""
    found: dict[tuple[str, str], float] = {}
    for item in items:
        kfid, user = item.get("open_kfid"), item.get("external_userid")
        if not isinstance(kfid, str) or not isinstance(user, str) or not user:
            continue
        if accounts is not None and kfid not in accounts:
            continue
        when = item.get("send_time")
        stamp = float(when) if isinstance(when, int | float) else 0.0
        found[(kfid, user)] = max(stamp, found.get((kfid, user), 0.0))
    return sorted(found, key=lambda pair: found[pair], reverse=True)[:limit]


def _count_states(api: KfApi, customers: list[tuple[str, str]]) -> tuple[dict[str, int], str]:
    """Counts of "bot" (state 0/1), "human" (2/3), "ended" (4), "error"; the first error's text."""
    counts = dict.fromkeys(("bot", "human", "ended", "error"), 0)
    first_error = ""
    for kfid, user in customers:
        try:
            state = api.get_service_state(kfid, user).state
        except KfError as err:
            counts["error"] += 1
            first_error = first_error or str(err)
            continue
        counts["bot" if state in (0, 1) else "human" if state in STATE_HUMAN else "ended"] += 1
    return counts, first_error


def _states_result(counts: dict[str, int], first_error: str) -> Result:
    n = sum(counts.values())
    bot, human, ended, error = counts["bot"], counts["human"], counts["ended"], counts["error"]
    zh = (
        f"最近 {n} 位客户：{bot} 位机器人可回复（状态 0/1），"
        f"{human} 位排队或人工接待（状态 2/3，机器人按设计不回复），"
        f"{ended} 位已结束（状态 4）"
    )
    en = (
        f"latest {n} customer(s): {bot} the bot may answer (state 0/1), {human} queued or with a human "
        f"(state 2/3: the bot stays silent by design), {ended} ended (state 4)"
    )
    if error:
        return Result(WARN, bilingual(f"{zh}，{error} 位查询失败", f"{en}, {error} failed: {first_error}"))
    if human and human == n:
        return Result(
            WARN,
            bilingual(zh, en),
            bilingual(
                "若希望机器人回复（否则发送得到 95018）：不要把新会话自动分配给接待人员或放入排队池",
                "for the bot to answer (else sends get 95018), do not auto-assign new sessions to "
                "receptionists or the queue (微信客服 → 接待方式)",
            ),
        )
    return Result(OK, bilingual(zh, en))


def check_service_states(ctx: Context) -> Result:
    if ctx.api is None:
        return skipped("gettoken")
    if ctx.read_recent is None:
        return skipped("state")
    visible = {str(a["open_kfid"]) for a in ctx.accounts} if ctx.accounts is not None else None
    customers = recent_customers(ctx.read_recent(), visible, MAX_CUSTOMERS)
    if not customers:
        return Result(
            OK,
            bilingual(
                "状态存储中没有最近的客户，无需检查（不带回调 token 拉取 kf/sync_msg 会被限频，故不拉取）",
                "no recent customer in the state store: nothing to check (kf/sync_msg without a callback "
                "token is rate limited, so it is not pulled)",
            ),
        )
    counts, first_error = _count_states(ctx.api, customers)
    return _states_result(counts, first_error)
