from __future__ import annotations

from typing import Any

import pytest

from channel.wechatcom_kf.desk.config import DeskConfig


def test_defaults() -> None:
    desk = DeskConfig.defaults()
    assert desk.handoff.keywords.matches("转人工") and desk.handoff.after_failures == 2
    assert desk.hours.always_open and desk.off_hours_policy == "bot" and desk.welcome_menu is None
    assert desk.ai_disclosure_seconds == 0.0


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"wechatcom_kf_off_hours_policy": "sleep"}, "wechatcom_kf_off_hours_policy"),
        ({"wechatcom_kf_handoff_target": "boss"}, "wechatcom_kf_handoff_target"),
        ({"wechatcom_kf_handoff_keywords": [1, 2]}, "wechatcom_kf_handoff_keywords"),
        ({"wechatcom_kf_handoff_after_failures": -1}, "wechatcom_kf_handoff_after_failures"),
        ({"wechatcom_kf_business_hours": "mon 25:00-26:00"}, "wechatcom_kf_business_hours"),
        ({"wechatcom_kf_timezone": "Mars/Olympus"}, "wechatcom_kf_timezone"),
        ({"wechatcom_kf_welcome_menu": {"list": "x"}}, "wechatcom_kf_welcome_menu"),
        ({"wechatcom_kf_flood_window_seconds": 0}, "wechatcom_kf_flood_window_seconds"),
    ],
)
def test_bad_values_name_their_key(values: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        DeskConfig.from_values(values)


def test_the_ai_label_period() -> None:
    desk = DeskConfig.from_values({"wechatcom_kf_ai_disclosure": True, "wechatcom_kf_ai_disclosure_hours": 2})
    assert desk.ai_disclosure_seconds == 7200.0
