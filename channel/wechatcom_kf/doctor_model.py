"""The doctor's model check: which bot this runtime would run, and one small probe of its endpoint."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import requests

from .doctor_results import FAIL, OK, PROBE_TIMEOUT_SECONDS, WARN, Context, Result, bilingual
from .host import runs_in_this_runtime
from .redaction import register_secret

# This runtime's bot names and defaults (``models/bot_factory.py``, ``config.py``; the channel package
# imports nothing of the host but its contract, so they are repeated here and a test keeps them in step).
ECHO, OPENAI, DIFY = "echo", "openai", "dify"
OPENAI_BOT_TYPES = ("openai", "chatgpt", "gpt")  # any letter case
DEFAULT_MODEL_BASE = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_DIFY_BASE = "https://api.dify.ai/v1"


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
