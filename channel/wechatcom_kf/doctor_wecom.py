"""The doctor's WeCom API checks: gettoken, kf/account/list, and the service state of recent customers."""

from __future__ import annotations

import re
from typing import Any

from .api import KfApi
from .doctor_results import FAIL, OK, PROBE_TIMEOUT_SECONDS, WARN, Context, Result, bilingual, skipped
from .errors import KfError, KfNetworkError, errcode_hint
from .retry import ONCE
from .settings import KfSettings
from .store.base import RawItem

MAX_CUSTOMERS = 10  # kf/service_state/get calls of the last check
MAX_ACCOUNTS_SHOWN = 10
STATE_HUMAN = (2, 3)  # queued in the pool / with a receptionist: the bot stays silent by design


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
