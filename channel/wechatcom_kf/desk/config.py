"""The customer-service settings as typed objects, checked once at start (ValueError names the key)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .hours import BusinessHours
from .keywords import KeywordMatcher
from .menus import check_menu
from .settings import DESK_SETTINGS, HANDOFF_TARGETS, OFF_HOURS_POLICIES
from .texts import CustomerTexts


@dataclass(frozen=True)
class HandoffConfig:
    keywords: KeywordMatcher
    menu_id: str
    marker: str
    after_failures: int
    to_queue_only: bool  # False: a receiving receptionist first, else the queue


@dataclass(frozen=True)
class DeskConfig:
    texts: CustomerTexts
    handoff: HandoffConfig
    hours: BusinessHours
    off_hours_policy: str
    welcome_menu: dict[str, Any] | None  # a msgmenu body, or None for a plain text welcome
    flood_max_messages: int
    flood_window_seconds: float
    customer_info: bool
    ai_disclosure_seconds: float  # 0 = off
    thinking_notice_seconds: float  # 0 = off
    stream_early_parts: bool

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> DeskConfig:
        get = {spec.name: values.get(spec.name, spec.default) for spec in DESK_SETTINGS}.__getitem__
        texts = CustomerTexts.from_settings({k: str(v) for k, v in values.items() if k.endswith("_text")})
        return cls(
            texts=texts,
            handoff=_handoff(get),
            hours=_hours(get),
            off_hours_policy=_choice(get, "wechatcom_kf_off_hours_policy", OFF_HOURS_POLICIES),
            welcome_menu=check_menu(
                "wechatcom_kf_welcome_menu", get("wechatcom_kf_welcome_menu"), texts.welcome
            ),
            flood_max_messages=_at_least(get, "wechatcom_kf_flood_max_messages", 0),
            flood_window_seconds=_positive(get, "wechatcom_kf_flood_window_seconds"),
            customer_info=bool(get("wechatcom_kf_customer_info")),
            ai_disclosure_seconds=(
                _positive(get, "wechatcom_kf_ai_disclosure_hours") * 3600.0
                if get("wechatcom_kf_ai_disclosure") and texts.ai_disclosure
                else 0.0
            ),
            stream_early_parts=bool(get("wechatcom_kf_stream_early_parts")),
            thinking_notice_seconds=(
                _at_least_float(get, "wechatcom_kf_thinking_notice_seconds") if texts.thinking else 0.0
            ),
        )

    @classmethod
    def defaults(cls) -> DeskConfig:
        return cls.from_values({})


def _handoff(get: Any) -> HandoffConfig:
    keywords = get("wechatcom_kf_handoff_keywords")
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        raise ValueError("wechatcom_kf_handoff_keywords: expected a list of strings")
    return HandoffConfig(
        keywords=KeywordMatcher(keywords),
        menu_id=str(get("wechatcom_kf_handoff_menu_id") or "").strip(),
        marker=str(get("wechatcom_kf_handoff_marker") or "").strip(),
        after_failures=_at_least(get, "wechatcom_kf_handoff_after_failures", 0),
        to_queue_only=_choice(get, "wechatcom_kf_handoff_target", HANDOFF_TARGETS) == "queue",
    )


def _hours(get: Any) -> BusinessHours:
    dates = get("wechatcom_kf_closed_dates")
    if not isinstance(dates, list):
        raise ValueError("wechatcom_kf_closed_dates: expected a list of dates")
    try:
        return BusinessHours.parse(
            str(get("wechatcom_kf_business_hours") or ""),
            timezone=str(get("wechatcom_kf_timezone") or "Asia/Shanghai"),
            closed_dates=[str(d) for d in dates],
        )
    except ValueError as exc:
        names = "wechatcom_kf_business_hours / wechatcom_kf_closed_dates / wechatcom_kf_timezone"
        raise ValueError(f"{names}: {exc}") from None


def _choice(get: Any, name: str, allowed: tuple[str, ...]) -> str:
    value = str(get(name) or "").strip().lower()
    if value not in allowed:
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _at_least(get: Any, name: str, low: int) -> int:
    value = int(get(name))
    if value < low:
        raise ValueError(f"{name}: must be at least {low}")
    return value


def _positive(get: Any, name: str) -> float:
    value = float(get(name))
    if value <= 0:
        raise ValueError(f"{name}: must be greater than 0")
    return value


def _at_least_float(get: Any, name: str) -> float:
    value = float(get(name))
    if value < 0:
        raise ValueError(f"{name}: must be 0 (off) or more")
    return value
