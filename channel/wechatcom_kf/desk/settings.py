"""Settings of the customer-service features: hand-off, business hours, menus, flood guard, texts.

Declared here, merged into the channel's one settings table (``..settings.KF_SETTINGS``), read once
at start and checked by ``DeskSettings.check`` so a bad value stops the start with its key named.
"""

from __future__ import annotations

from typing import Any

from ..setting_spec import SettingSpec
from .texts import TEXT_SPECS

DEFAULT_HANDOFF_KEYWORDS = ["转人工", "人工", "人工客服", "人工服务", "找人工", "真人", "真人客服", "客服"]
HANDOFF_TARGETS = ("receptionist", "queue")
OFF_HOURS_POLICIES = ("bot", "handoff", "notice")


def _spec(name: str, default: Any, kind: type, description: str) -> SettingSpec:
    return SettingSpec(name, default, kind, name.upper(), description)


DESK_SETTINGS: tuple[SettingSpec, ...] = (
    _spec(
        "wechatcom_kf_handoff_keywords",
        DEFAULT_HANDOFF_KEYWORDS,
        list,
        "转人工关键词：用户整条消息（去掉空格标点、前缀“请/我要/我想/帮我/给我/麻烦”、后缀“吧/啊/呀/谢谢”）"
        "等于其中之一时转人工；空列表关闭 / hand-off keywords: a whole message equal to one of them "
        "(after removing spaces, punctuation and polite prefixes/suffixes) hands off; [] = off",
    ),
    _spec(
        "wechatcom_kf_handoff_menu_id",
        "handoff",
        str,
        "菜单中表示“转人工”的 click 项 id / id of the menu click item that hands off",
    ),
    _spec(
        "wechatcom_kf_handoff_marker",
        "[转人工]",
        str,
        "机器人回复中含此标记时转人工（标记本身不发给用户）；空表示关闭 / a bot reply containing this "
        "marker hands off (the marker is not shown); empty = off",
    ),
    _spec(
        "wechatcom_kf_handoff_after_failures",
        2,
        int,
        "模型连续失败（出错、不可用）多少次后转人工；0 表示从不 / hand off after this many consecutive "
        "failed model answers (errors, unreachable); 0 = never",
    ),
    _spec(
        "wechatcom_kf_handoff_target",
        "receptionist",
        str,
        "转给谁：receptionist = 轮流选一位接待中的接待人员，没有则进入排队；queue = 总是进入待接入池 / "
        "receptionist = a receiving receptionist in turn (else the queue); queue = always the queue",
    ),
    _spec(
        "wechatcom_kf_business_hours",
        "",
        str,
        '人工客服营业时间，如 "mon-fri 09:00-18:00; sat 10:00-16:00"；空表示全天 / business hours, '
        'e.g. "mon-fri 09:00-18:00; sat 10:00-16:00"; empty = always open',
    ),
    _spec(
        "wechatcom_kf_timezone",
        "Asia/Shanghai",
        str,
        "营业时间所在时区 / time zone of the business hours",
    ),
    _spec(
        "wechatcom_kf_closed_dates",
        [],
        list,
        '休息日（整天），如 ["2026-10-01..2026-10-07"] / days closed all day, e.g. '
        '["2026-10-01..2026-10-07"]',
    ),
    _spec(
        "wechatcom_kf_off_hours_policy",
        "bot",
        str,
        "非营业时间：bot = 提示后机器人照常回答；handoff = 提示并转入排队；notice = 只发提示 / outside "
        "hours: bot = notice, then the bot answers; handoff = notice and queue; notice = notice only",
    ),
    _spec(
        "wechatcom_kf_welcome_menu",
        {},
        dict,
        "欢迎语菜单（企业微信 msgmenu 格式：list、可选 head_content/tail_content；head_content 默认为"
        "欢迎语）；空表示纯文字欢迎语 / welcome menu in WeCom's msgmenu shape (list, optional "
        "head_content/tail_content; head_content defaults to the welcome text); {} = a plain text welcome",
    ),
    _spec(
        "wechatcom_kf_flood_max_messages",
        5,
        int,
        "同一用户在 flood 窗口内超过该条数后，后续消息合并为一轮回答；0 关闭 / after this many messages "
        "of one customer within the flood window, further ones are merged into one turn; 0 = off",
    ),
    _spec(
        "wechatcom_kf_flood_window_seconds",
        10.0,
        float,
        "连发检测的时间窗口（秒）/ the flood window in seconds",
    ),
    _spec(
        "wechatcom_kf_thinking_notice_seconds",
        0.0,
        float,
        "模型超过这么多秒仍未回答时，先发 wechatcom_kf_thinking_text（计入 5 条限额，只在还能留出"
        "回答时发送）；0 关闭 / when the model has not answered within this many seconds, send "
        "wechatcom_kf_thinking_text first (counted in the 5-send budget, only while a send is left for "
        "the answer); 0 = off",
    ),
    _spec(
        "wechatcom_kf_stream_early_parts",
        True,
        bool,
        "模型流式输出（stream: true）时，回答的前几段一写完就先发出（段落与不流式时完全相同，只是更早）/ "
        "with a streaming model (stream: true), send the answer's first parts as soon as they are written "
        "(the same parts as without streaming, only sooner)",
    ),
    _spec(
        "wechatcom_kf_customer_info",
        True,
        bool,
        "获取用户昵称（kf/customer/batchget，带缓存）放入上下文 / fetch the customer's nickname "
        "(kf/customer/batchget, cached) into the context",
    ),
    _spec(
        "wechatcom_kf_ai_disclosure",
        False,
        bool,
        "在回复前标注 AI 生成（每位用户每个周期一次）/ label replies as AI-generated (once per customer "
        "per period)",
    ),
    _spec(
        "wechatcom_kf_ai_disclosure_hours",
        24.0,
        float,
        "AI 标注的周期（小时）/ period of the AI label in hours",
    ),
    *TEXT_SPECS,
)

DESK_SETTING_NAMES = frozenset(spec.name for spec in DESK_SETTINGS)
